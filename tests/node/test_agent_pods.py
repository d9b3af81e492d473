"""The agent runs real pods: checked from inside the containers and through the API.

A dedicated control plane (no scheduler: pods name their node) and a real
`skiff-agent` process with its own state dir and cgroup parent; the busybox
test image is loaded into the agent's store first, as `ctl image load` would.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from controlplane.client import Client, NotFound
from procs import REPO, AgentProcess, ControlPlane, delete_all_pods, force_cleanup

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs real containers")]
IMAGE = "skiff.local/busybox:1.35"
NODE = "agent-test-node"


@pytest.fixture(scope="module")
def image_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("image")
    subprocess.run([sys.executable, str(REPO / "deploy" / "build-test-image.py"), "--out", str(out / "layout"),
                    "--archive", str(out / "busybox.tar")], check=True, capture_output=True)
    return out / "busybox.tar"


@pytest.fixture(scope="module")
def cluster(etcd, tmp_path_factory: pytest.TempPathFactory, image_archive: Path):
    base = tmp_path_factory.mktemp("agent-cluster")
    cp = ControlPlane(base / "cp", etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", f"/agent-{uuid.uuid4().hex[:8]}", "--no-scheduler",
                                  "--no-controllers"]).start()
    state = base / "agent"
    parent = f"skiff-test-{uuid.uuid4().hex[:8]}"
    from agent.images import ImageStore
    asyncio.run(ImageStore(state / "images").load_archive(image_archive))
    agent = AgentProcess(state, controlplane=cp, node_name=NODE, cgroup_parent=parent).start()
    try:
        yield {"cp": cp, "agent": agent, "state": state, "parent": parent}
    finally:
        try:
            if agent.proc and agent.proc.poll() is None:
                asyncio.run(delete_all_pods(cp))      # the agent cleans up, then everything stops
        finally:
            agent.stop()
            cp.stop()
            force_cleanup(state, parent)
            shutil.rmtree(state, ignore_errors=True)


def pod(name: str, command: str, *, restart: str = "Never", **extra) -> dict:
    container = {"name": "main", "image": IMAGE, "command": ["sh", "-c", command], **extra.pop("container", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": NODE, "restartPolicy": restart, "terminationGracePeriodSeconds": 2,
                     "containers": [container], **extra}}


async def wait_pod(c: Client, name: str, check, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = await c.get("pods", name, "default")
            if check(last):
                return last
        except NotFound:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"pod {name} did not reach the expected state; last status: {last and last.get('status')}")


async def logs(c: Client, name: str, **kw) -> str:
    return b"".join([chunk async for chunk in c.logs("default", name, **kw)]).decode()


def phase(p: str):
    return lambda obj: (obj.get("status") or {}).get("phase") == p


def terminated(obj: dict) -> dict:
    return ((obj.get("status") or {}).get("containerStatuses") or [{}])[0].get("state", {}).get("terminated") or {}


async def test_container_sees_its_own_world(cluster):
    async with Client(cluster["cp"].address, credentials=cluster["cp"].credentials) as c:
        await c.create(pod("inside", "echo pid1=$(cat /proc/1/comm); hostname; ps -o pid,comm; "
                                     "grep -c . /proc/mounts; test -e /work && echo HOST_FS_VISIBLE; exit 0"))
        done = await wait_pod(c, "inside", phase("Succeeded"))
        out = await logs(c, "inside")
        assert "pid1=sh" in out                      # PID 1 is the container's command
        assert "\ninside\n" in out                   # hostname is the pod name
        pids = [line.split()[0] for line in out.splitlines() if line.strip() and line.split()[0].isdigit()]
        assert len(pids) <= 3, f"host processes visible: {out}"
        assert "HOST_FS_VISIBLE" not in out
        assert terminated(done)["exitCode"] == 0 and terminated(done)["reason"] == "Completed"


async def test_rootfs_is_fresh_after_restart_but_emptydir_keeps_data(cluster):
    script = ("echo run >> /data/runs; if [ -e /marker ]; then echo ROOTFS_KEPT; else echo ROOTFS_CLEAN; fi; "
              "touch /marker; echo runs=$(wc -l < /data/runs); sleep 0.5; exit 1")
    async with Client(cluster["cp"].address, credentials=cluster["cp"].credentials) as c:
        await c.create(pod("restarter", script, restart="Always", volumes=[{"name": "data", "emptyDir": {}}],
                           container={"volumeMounts": [{"name": "data", "mountPath": "/data"}]}))
        restarted = await wait_pod(c, "restarter",
                                   lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1
                                   and "running" in p["status"]["containerStatuses"][0]["state"], timeout=40)
        assert restarted["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1
        out = await logs(c, "restarter")
        assert "ROOTFS_CLEAN" in out and "ROOTFS_KEPT" not in out
        assert "runs=2" in out or "runs=3" in out
        await c.delete("pods", "restarter", "default", grace_seconds=0)


async def test_crashloop_backoff_is_reported(cluster):
    async with Client(cluster["cp"].address, credentials=cluster["cp"].credentials) as c:
        await c.create(pod("crasher", "exit 3", restart="Always"))
        crashed = await wait_pod(c, "crasher", lambda p: any(
            (s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
            for s in p["status"].get("containerStatuses") or []), timeout=30)
        status = crashed["status"]["containerStatuses"][0]
        assert status["lastState"]["terminated"]["exitCode"] == 3
        assert status["lastState"]["terminated"]["reason"] == "Error"
        events = (await c.list("events", "default", field_selector="involvedObject.name=crasher")).items
        assert any(e["reason"] == "BackOff" for e in events)


async def test_memory_limit_oomkills_and_says_so(cluster):
    async with Client(cluster["cp"].address, credentials=cluster["cp"].credentials) as c:
        await c.create(pod("hog", "tail /dev/zero", container={"resources": {"limits": {"memory": "32Mi"}}}))
        done = await wait_pod(c, "hog", phase("Failed"), timeout=60)
        state = terminated(done)
        assert state["reason"] == "OOMKilled" and state["exitCode"] == 137
        events = (await c.list("events", "default", field_selector="involvedObject.name=hog")).items
        assert any(e["reason"] == "OOMKilling" and "32Mi" in e["message"] for e in events)


async def test_liveness_failure_restarts_and_readiness_unreadies(cluster):
    async with Client(cluster["cp"].address, credentials=cluster["cp"].credentials) as c:
        liveness = {"exec": {"command": ["test", "-e", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 1}
        await c.create(pod("live", "touch /tmp/alive; sleep 2; rm /tmp/alive; sleep 60", restart="Always",
                           container={"livenessProbe": liveness}))
        readiness = {"exec": {"command": ["test", "-e", "/tmp/ready"]}, "periodSeconds": 1}
        await c.create(pod("ready", "sleep 60", restart="Always", container={"readinessProbe": readiness}))
        await wait_pod(c, "live", lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1,
                       timeout=40)
        events = (await c.list("events", "default", field_selector="involvedObject.name=live")).items
        assert any(e["reason"] == "Unhealthy" and "Liveness probe failed" in e["message"] for e in events)
        not_ready = await wait_pod(c, "ready", phase("Running"))
        assert not not_ready["status"]["containerStatuses"][0]["ready"]
        ready_cond = next(x for x in not_ready["status"]["conditions"] if x["type"] == "Ready")
        assert ready_cond["status"] == "False"
        await c.delete("pods", "live", "default", grace_seconds=0)
        await c.delete("pods", "ready", "default", grace_seconds=0)


async def test_exec_runs_inside_the_container(cluster):
    from protos import skiff_pb2 as pb
    async with Client(cluster["cp"].address, credentials=cluster["cp"].credentials) as c:
        await c.create(pod("execme", "sleep 60", restart="Always"))
        await wait_pod(c, "execme", phase("Running"))

        async def inputs():
            yield pb.ExecInput(start=pb.ExecStart(namespace="default", pod="execme", container="main",
                                                  command=["sh", "-c", "hostname; exit 7"]))
            yield pb.ExecInput(stdin_closed=True)
        out, code = b"", None
        async for message in c.exec(inputs()):
            out += message.stdout
            if message.exited:
                code = message.exit_code
        assert out.decode().strip() == "execme" and code == 7
        await c.delete("pods", "execme", "default", grace_seconds=0)


async def test_agent_sigkill_leaves_containers_running_and_readopts_them(cluster):
    agent: AgentProcess = cluster["agent"]
    async with Client(cluster["cp"].address, credentials=cluster["cp"].credentials) as c:
        await c.create(pod("survivor", "sleep 300", restart="Always"))
        await c.create(pod("quitter", "sleep 3; exit 3"))
        await c.create(pod("orphaned", "sleep 300", restart="Always"))
        before = await wait_pod(c, "survivor", phase("Running"))
        await wait_pod(c, "quitter", phase("Running"))
        orphan_uid = (await wait_pod(c, "orphaned", phase("Running")))["metadata"]["uid"]
        container_id = before["status"]["containerStatuses"][0]["containerID"]
        agent.kill()                                   # SIGKILL
        # While the agent is down: one container exits, one pod is deleted for good.
        await c.delete("pods", "orphaned", "default", grace_seconds=0)
        await asyncio.sleep(4)
        runtime_dir = cluster["state"] / "runtime" / "containers"
        assert (runtime_dir / container_id.removeprefix("skiff://")).exists()
        agent.start()
        quit_state = await wait_pod(c, "quitter", phase("Failed"), timeout=30)
        assert terminated(quit_state)["exitCode"] == 3       # the exit code was not lost
        after = await wait_pod(c, "survivor", phase("Running"))
        status = after["status"]["containerStatuses"][0]
        assert status["containerID"] == container_id and status["restartCount"] == 0   # re-adopted, not restarted

        def orphan_gone() -> bool:   # the pod deleted while the agent was down is cleaned up
            return not any(d.name.startswith(orphan_uid) for d in runtime_dir.iterdir())
        deadline = time.monotonic() + 20
        while not orphan_gone():
            assert time.monotonic() < deadline, f"containers left: {[d.name for d in runtime_dir.iterdir()]}"
            await asyncio.sleep(0.2)
        await c.delete("pods", "survivor", "default", grace_seconds=0)
        await c.delete("pods", "quitter", "default", grace_seconds=0)


async def test_service_account_token_is_mounted_unless_opted_out(cluster):
    import jwt
    sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    async with Client(cluster["cp"].address, credentials=cluster["cp"].credentials) as c:
        await c.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": "default"}})
        await c.create(pod("sa-reader", f"cat {sa_dir}/namespace; echo; cat {sa_dir}/token; echo; "
                                        f"touch {sa_dir}/x 2>/dev/null && echo WRITABLE || echo READONLY; "
                                        f"grep -c 'BEGIN CERTIFICATE' {sa_dir}/ca.crt",
                           serviceAccountName="robot"))
        await c.create(pod("sa-none", f"test -e {sa_dir} && echo MOUNTED || echo NONE", serviceAccountName="robot",
                           automountServiceAccountToken=False))
        done = await wait_pod(c, "sa-reader", phase("Succeeded"))
        namespace, token, writable, ca_certs = (await logs(c, "sa-reader")).split("\n")[:4]
        assert (namespace, writable, ca_certs) == ("default", "READONLY", "1")
        claims = jwt.decode(token, options={"verify_signature": False}, audience="skiff")
        assert claims["sub"] == "system:serviceaccount:default:robot"
        assert claims["kubernetes.io"]["pod"] == {"name": "sa-reader", "uid": done["metadata"]["uid"]}
        await wait_pod(c, "sa-none", phase("Succeeded"))
        assert (await logs(c, "sa-none")).strip() == "NONE"
