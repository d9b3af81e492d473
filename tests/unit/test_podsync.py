"""The pod lifecycle of the agent (`PodSyncer`, agent/podsync.py) on the fake runtime, without root.

The real PodSyncer, PodWorkers, ProbeManager (TCP probes against a loopback listener the
test runs), VolumeManager (in a temp dir) and pod status builder run here; only what lies
outside the node is replaced: the container runtime (agent/fakeruntime.py, the seam the
agent drives containers through), the image registry (FakeImages) and the API server
(`ApiRecorder` below keeps the status the agent writes, and the events). The node tests
(tests/node/test_agent_pods.py) run the same paths with real containers as root.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any, Callable

import pytest

from agent.config import AgentConfig, BackoffSettings
from agent.fakeruntime import FakeImages, FakeRuntime, Program
from agent.podsync import DONE, PodSyncer
from agent.podworkers import PodWorkers
from agent.probing import ProbeManager
from agent.runtime import RuntimeService
from agent.volumes import VolumeManager
from controlplane.client import NotFound

Pod = dict[str, Any]


class ApiRecorder:
    """The API server as the agent's client and event recorder see it: statuses and events kept."""

    def __init__(self) -> None:
        self.on_status: Callable[[dict[str, Any]], None] = lambda obj: None
        self.statuses: dict[str, dict[str, Any]] = {}     # pod name -> last status written
        self.history: list[tuple[str, dict[str, Any]]] = []   # (pod name, status) in the order written
        self.events: list[tuple[str, str, str]] = []       # (type, reason, message)
        self.deleted: list[str] = []

    async def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.statuses[obj["metadata"]["name"]] = obj["status"]
        self.history.append((obj["metadata"]["name"], obj["status"]))
        self.on_status(obj)
        return obj

    async def get(self, kind: str, name: str, namespace: str = "") -> Any:
        raise NotFound(f'{kind} "{name}" not found')

    async def delete(self, kind: str, name: str, namespace: str = "", **_: Any) -> None:
        self.deleted.append(name)

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]


class Node:
    """One node's agent pod logic on a FakeRuntime."""

    def __init__(self, tmp: Path, program: Callable[..., Program] | None = None, *, max_pods: int = 110) -> None:
        self.api = ApiRecorder()
        self.runtime = FakeRuntime(program=program)
        self.images = FakeImages()
        self.pods: dict[str, Pod] = {}
        config = AgentConfig(state_dir=tmp, max_pods=max_pods, network=False,
                             backoff=BackoffSettings(initial_seconds=0.4, max_seconds=2, reset_after_seconds=600))
        self.workers = PodWorkers(self._sync, resync_seconds=5)
        self.syncer = PodSyncer(client=self.api, config=config, runtime=self.runtime, images=self.images,
                                volumes=VolumeManager(tmp / "pods", use_tmpfs=False), recorder=self.api,
                                node_ip="198.18.0.1", pod_lookup=self.pods.get, trigger=self.workers.trigger,
                                probes=ProbeManager(runtime=self.runtime, recorder=self.api,
                                                    trigger=self.workers.trigger),
                                service_account_tokens=False)
        self.done: set[str] = set()
        self.api.on_status = self._echo

    def _echo(self, written: dict[str, Any]) -> None:
        """The agent's pods informer sees its own status write come back, and syncs the pod again."""
        for pod in self.pods.values():
            if pod["metadata"]["name"] == written["metadata"]["name"]:
                self.apply({**pod, "status": written["status"]})
                return

    async def close(self) -> None:
        """Stop the pod workers and the exit watchers (the agent's shutdown; containers keep running)."""
        await self.workers.stop()
        tasks = [t for state in self.syncer.states.values() for t in state.watchers.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _sync(self, uid: str) -> float | str | None:
        result = await self.syncer.sync(uid)
        if result == DONE:
            self.done.add(uid)
        return result

    def apply(self, pod: Pod) -> None:
        self.pods[pod["metadata"]["uid"]] = pod
        self.workers.trigger(pod["metadata"]["uid"])

    def status(self, name: str) -> dict[str, Any]:
        return self.api.statuses.get(name) or {}

    def container(self, pod: str, name: str, *, init: bool = False) -> dict[str, Any]:
        key = "initContainerStatuses" if init else "containerStatuses"
        return next((c for c in self.status(pod).get(key) or [] if c["name"] == name), {})

    async def until(self, condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (value := condition()):
            if loop.time() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; statuses: {self.api.statuses}"
                                     f"; events: {self.api.events}")
            await asyncio.sleep(0.02)
        return value


def make_pod(name: str, *, containers: list[dict[str, Any]] | None = None, **spec: Any) -> Pod:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {"containers": containers or [{"name": "app", "image": "busybox"}], **spec}}


@pytest.fixture
async def node(tmp_path: Path):
    made: list[Node] = []

    def build(program: Callable[..., Program] | None = None, **options: Any) -> Node:
        made.append(Node(tmp_path, program, **options))
        return made[-1]
    yield build
    for n in made:
        await n.close()


def by_name(programs: dict[str, Program]) -> Callable[..., Program]:
    return lambda spec: programs.get(spec.name, Program())


def test_both_runtimes_are_runtime_services() -> None:
    from agent.runtime.runtime import Runtime
    assert isinstance(FakeRuntime(), RuntimeService)
    for verb in [n for n in dir(RuntimeService) if not n.startswith("_")]:
        assert callable(getattr(Runtime, verb)), verb


async def test_a_pod_runs_and_is_ready(node) -> None:
    n = node()
    n.apply(make_pod("web"))
    await n.until(lambda: n.status("web").get("phase") == "Running" and n.container("web", "app")["ready"],
                  "web Running and Ready")
    app = n.container("web", "app")
    assert "running" in app["state"] and app["restartCount"] == 0
    ready = {c["type"]: c["status"] for c in n.status("web")["conditions"]}
    assert ready["Ready"] == "True" and ready["ContainersReady"] == "True"
    assert n.api.reasons()[-2:] == ["Created", "Started"]


async def test_init_containers_run_in_order_before_the_app(node) -> None:
    n = node(by_name({"migrate": Program(exit_after=0.05), "seed": Program(exit_after=0.05)}))
    n.apply(make_pod("db", initContainers=[{"name": "migrate", "image": "tool"}, {"name": "seed", "image": "tool"}]))
    await n.until(lambda: n.status("db").get("phase") == "Running", "db Running")
    assert [spec.name for spec in n.runtime.specs.values()] == ["migrate", "seed", "app"]
    for init in ("migrate", "seed"):
        assert n.container("db", init, init=True)["state"]["terminated"]["reason"] == "Completed"


async def test_a_failed_init_container_with_restart_never_fails_the_pod(node) -> None:
    n = node(by_name({"migrate": Program(exit_after=0.05, exit_code=3)}))
    n.apply(make_pod("db", restartPolicy="Never", initContainers=[{"name": "migrate", "image": "tool"}]))
    await n.until(lambda: n.status("db").get("phase") == "Failed", "db Failed")
    assert n.container("db", "migrate", init=True)["state"]["terminated"]["exitCode"] == 3
    assert "app" not in [spec.name for spec in n.runtime.specs.values()]


async def test_a_crashing_container_restarts_with_crashloop_backoff(node) -> None:
    n = node(by_name({"app": Program(exit_after=0.05, exit_code=1)}))
    n.apply(make_pod("crash"))
    waiting = await n.until(lambda: (n.container("crash", "app").get("state") or {}).get("waiting", {}).get(
        "reason") == "CrashLoopBackOff" and n.container("crash", "app"), "CrashLoopBackOff")
    assert waiting["lastState"]["terminated"]["exitCode"] == 1
    assert "back-off 0s restarting failed container=app pod=crash_default(uid-crash)" in \
        waiting["state"]["waiting"]["message"]
    await n.until(lambda: n.container("crash", "app").get("restartCount", 0) >= 2, "two restarts")
    assert n.api.reasons().count("BackOff") >= 1
    # Restarts wait: the second one came at least the first back-off (0.4 s) after the first.
    starts = sorted(spec.id for spec in n.runtime.specs.values())
    assert len(starts) >= 3


async def test_restart_policy_on_failure_ends_a_successful_pod(node) -> None:
    n = node(by_name({"app": Program(exit_after=0.05, exit_code=0)}))
    n.apply(make_pod("job", restartPolicy="OnFailure"))
    await n.until(lambda: n.status("job").get("phase") == "Succeeded", "job Succeeded")
    assert n.container("job", "app")["restartCount"] == 0


async def test_an_oom_kill_is_reported_once_and_restarted(node) -> None:
    n = node(by_name({"app": Program(exit_after=0.05, oom=True)}))
    n.apply(make_pod("hog", containers=[{"name": "app", "image": "busybox",
                                         "resources": {"limits": {"memory": "64Mi"}}}]))
    status = await n.until(lambda: n.container("hog", "app").get("restartCount", 0) >= 1 and
                           n.container("hog", "app"), "a restart after the OOM kill")
    assert status["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert status["lastState"]["terminated"]["exitCode"] == 137
    ooms = [m for _, r, m in n.api.events if r == "OOMKilling"]
    assert ooms[0] == "Memory cgroup out of memory: container app was killed (memory limit 64Mi)"
    # One event per OOM-killed instance, however often the pod is synced afterwards.
    assert len(ooms) <= status["restartCount"] + 1


async def listener() -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_readiness_follows_the_probe(node) -> None:
    server, port = await listener()
    try:
        n = node()
        probe = {"tcpSocket": {"port": port}, "periodSeconds": 0.1, "failureThreshold": 1}
        n.apply(make_pod("web", containers=[{"name": "app", "image": "busybox", "readinessProbe": probe}]))
        await n.until(lambda: n.container("web", "app").get("ready"), "ready by the probe")
        server.close()
        await server.wait_closed()
        await n.until(lambda: n.container("web", "app").get("ready") is False and
                      n.status("web")["phase"] == "Running", "not ready once the port is closed")
        assert "Unhealthy" in n.api.reasons()
    finally:
        server.close()


async def test_a_failing_liveness_probe_restarts_the_container(node) -> None:
    n = node()
    probe = {"tcpSocket": {"port": closed_port()}, "periodSeconds": 0.1, "failureThreshold": 2}
    n.apply(make_pod("web", containers=[{"name": "app", "image": "busybox", "livenessProbe": probe}]))
    status = await n.until(lambda: n.container("web", "app").get("restartCount", 0) >= 1 and
                           n.container("web", "app"), "a restart after the liveness failures")
    assert status["lastState"]["terminated"]["exitCode"] == 143          # SIGTERM, as the runtime reports it
    messages = [m for _, r, m in n.api.events if r == "Killing"]
    assert messages[0] == "Container app failed liveness probe, will be restarted"


async def test_an_image_that_cannot_be_pulled_backs_off(node) -> None:
    n = node()
    n.images.failing["nosuch"] = "ErrImagePull"
    n.apply(make_pod("bad", containers=[{"name": "app", "image": "nosuch"}]))
    await n.until(lambda: (n.container("bad", "app").get("state") or {}).get("waiting", {}).get("reason")
                  == "ImagePullBackOff", "ImagePullBackOff")
    assert ("Warning", "Failed", "Error: ErrImagePull") in n.api.events


async def test_a_start_error_is_the_waiting_reason(node) -> None:
    n = node(by_name({"app": Program(start_error='exec "/nosuch": No such file or directory')}))
    n.apply(make_pod("broken"))

    def written() -> list[dict[str, Any]]:    # the next sync may turn it into CrashLoopBackOff at once
        return [w for _, status in n.api.history for c in status.get("containerStatuses") or []
                if (w := (c.get("state") or {}).get("waiting") or {}).get("reason") == "RunContainerError"]
    waiting = (await n.until(written, "RunContainerError"))[0]
    assert waiting["message"] == 'exec "/nosuch": No such file or directory'
    assert ("Warning", "Failed", 'Error: failed to start container "app": exec "/nosuch": No such file or '
                                 'directory') in n.api.events


async def test_eviction_fails_the_pod_and_kills_its_containers(node) -> None:
    n = node()
    n.apply(make_pod("fat"))
    await n.until(lambda: n.status("fat").get("phase") == "Running", "fat Running")
    n.syncer.request_eviction("uid-fat", "Pod ephemeral local storage usage exceeds the total limit of "
                                         "containers 1Mi.")
    status = await n.until(lambda: n.status("fat").get("phase") == "Failed" and n.status("fat"), "fat Failed")
    assert status["reason"] == "Evicted"
    assert status["message"].startswith("Pod ephemeral local storage usage exceeds")
    assert all(s.state == "exited" for s in await n.runtime.list())
    assert "Evicted" in n.api.reasons()


async def test_pods_beyond_max_pods_are_rejected(node) -> None:
    n = node(max_pods=1)
    n.apply(make_pod("one"))
    await n.until(lambda: n.status("one").get("phase") == "Running", "one Running")
    n.apply(make_pod("two"))
    status = await n.until(lambda: n.status("two").get("phase") == "Failed" and n.status("two"), "two rejected")
    assert status["reason"] == "OutOfpods"


async def test_graceful_stop_waits_for_the_grace_period_then_kills(node) -> None:
    n = node(by_name({"app": Program(ignores_sigterm=True)}))
    pod = make_pod("slow")
    n.apply(pod)
    await n.until(lambda: n.status("slow").get("phase") == "Running", "slow Running")
    loop = asyncio.get_running_loop()
    began = loop.time()
    n.apply({**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z",
                                 "deletionGracePeriodSeconds": 0.3}})
    await n.until(lambda: "uid-slow" in n.done, "the pod finished")
    assert loop.time() - began >= 0.3
    assert n.api.deleted == ["slow"]                       # the grace-0 delete that ends a pod
    assert await n.runtime.list() == [] and await n.runtime.list_sandboxes() == []
    assert ("Normal", "Killing", "Stopping container app") in n.api.events


async def test_a_pod_that_disappears_is_cleaned_up(node) -> None:
    n = node()
    n.apply(make_pod("gone"))
    await n.until(lambda: n.status("gone").get("phase") == "Running", "gone Running")
    del n.pods["uid-gone"]
    n.workers.trigger("uid-gone")
    await n.until(lambda: "uid-gone" in n.done, "cleanup")
    assert await n.runtime.list() == []


async def test_a_restarted_agent_adopts_running_containers(node, tmp_path: Path) -> None:
    n = node()
    n.apply(make_pod("web"))
    await n.until(lambda: n.status("web").get("phase") == "Running", "web Running")
    await n.workers.stop()
    again = node()
    again.runtime = n.runtime
    again.syncer.runtime = n.runtime
    again.pods.update(n.pods)
    assert await again.syncer.adopt() == {"uid-web"}
    again.workers.trigger("uid-web")
    await again.until(lambda: again.status("web").get("phase") == "Running", "web Running again")
    assert len(n.runtime.specs) == 1                         # not started twice
