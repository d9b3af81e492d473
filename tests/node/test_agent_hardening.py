"""Secure by default, through the API: what a pod cannot do to its node.

A real control plane and `skiff-agent` (root, real containers) with a small pod
capacity (--max-pods 3), a small pids limit per pod (--pod-max-pids 64) and a
short ephemeral storage interval (--eviction-interval 0.5). Each test deletes
its pods and waits until they are gone, so capacity is free for the next.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from controlplane.client import AlreadyExists, Client, NotFound
from procs import REPO, AgentProcess, ControlPlane, delete_all_pods, force_cleanup

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs real containers")]
IMAGE = "skiff.local/busybox:1.35"
NODE = "hardening-node"
MAX_PODS = 3
POD_MAX_PIDS = 64


@pytest.fixture(scope="module")
def cluster(etcd, tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("hardening")
    subprocess.run([sys.executable, str(REPO / "deploy" / "build-test-image.py"), "--out", str(base / "layout"),
                    "--archive", str(base / "busybox.tar")], check=True, capture_output=True)
    cp = ControlPlane(base / "cp", etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", f"/hardening-{uuid.uuid4().hex[:8]}", "--no-scheduler",
                                  "--no-controllers"]).start()
    state = base / "agent"
    parent = f"skiff-test-{uuid.uuid4().hex[:8]}"
    from agent.images import ImageStore
    asyncio.run(ImageStore(state / "images").load_archive(base / "busybox.tar"))
    (state / "seccomp").mkdir(parents=True)
    (state / "seccomp" / "no-mkdir.json").write_text(json.dumps(
        {"defaultAction": "SCMP_ACT_ALLOW",
         "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    agent = AgentProcess(state, controlplane=cp, node_name=NODE, cgroup_parent=parent,
                         extra_args=["--max-pods", str(MAX_PODS), "--pod-max-pids", str(POD_MAX_PIDS),
                                     "--eviction-interval", "0.5"]).start()
    try:
        yield {"cp": cp, "agent": agent, "state": state, "parent": parent}
    finally:
        try:
            if agent.proc and agent.proc.poll() is None:
                asyncio.run(delete_all_pods(cp))
        finally:
            agent.stop()
            cp.stop()
            force_cleanup(state, parent)
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
async def api(cluster):
    async with Client(cluster["cp"].address, credentials=cluster["cp"].credentials) as c:
        try:
            yield c
        finally:
            await delete_all_pods(cluster["cp"])


def pod(name: str, command: str, *, namespace: str = "default", **extra) -> dict:
    container = {"name": "main", "image": IMAGE, "command": ["sh", "-c", command], **extra.pop("container", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": NODE, "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                     "containers": [container], **extra}}


async def wait_pod(c: Client, name: str, check, timeout: float = 30.0, namespace: str = "default") -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await c.get("pods", name, namespace)
        if check(last):
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"pod {name} did not reach the expected state; last status: {last and last.get('status')}")


def phase(p: str):
    return lambda obj: (obj.get("status") or {}).get("phase") == p


async def output(c: Client, name: str, namespace: str = "default") -> str:
    await wait_pod(c, name, lambda o: (o.get("status") or {}).get("phase") in ("Succeeded", "Failed"),
                   namespace=namespace)
    return b"".join([chunk async for chunk in c.logs(namespace, name)]).decode()


async def events(c: Client, name: str) -> list[dict]:
    return (await c.list("events", "default", field_selector=f"involvedObject.name={name}")).items


async def test_default_pod_cannot_reach_block_devices_or_unshare(api) -> None:
    script = ("grep Seccomp: /proc/self/status; "
              "mknod /tmp/blk b 7 0 2>&1 && dd if=/tmp/blk of=/dev/null count=1 2>&1 && echo BLOCK-OPENED; "
              "unshare -Ur true 2>&1 || echo UNSHARE-REFUSED; unshare -Urm true 2>&1 || echo URM-REFUSED")
    await api.create(pod("plain", script))
    out = await output(api, "plain")
    assert "Seccomp:\t2" in out
    assert "mknod: /tmp/blk: Operation not permitted" in out and "BLOCK-OPENED" not in out
    assert "UNSHARE-REFUSED" in out and "URM-REFUSED" in out


async def test_privileged_pod_may_open_block_devices_and_unconfined_may_unshare(api) -> None:
    """Both are what Pod Security's baseline level (the default) refuses: they run in a
    namespace labelled privileged."""
    ns = "hardening-privileged"
    try:
        await api.create({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": ns, "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}})
    except AlreadyExists:
        pass
    block = "mknod /tmp/blk b 7 0 && dd if=/tmp/blk of=/dev/null count=1 && echo BLOCK-OPENED"
    await api.create(pod("priv", block, namespace=ns, container={"securityContext": {"privileged": True}}))
    await api.create(pod("unconfined", "grep Seccomp: /proc/self/status; unshare -Ur id -u && echo UNSHARED",
                         namespace=ns, securityContext={"seccompProfile": {"type": "Unconfined"}}))
    assert "BLOCK-OPENED" in await output(api, "priv", ns)
    out = await output(api, "unconfined", ns)
    assert "Seccomp:\t0" in out and "UNSHARED" in out


async def test_localhost_profile_comes_from_the_agents_seccomp_dir(api) -> None:
    sc = {"seccompProfile": {"type": "Localhost", "localhostProfile": "no-mkdir.json"}}
    await api.create(pod("local", "mkdir /tmp/d 2>&1 || echo MKDIR-REFUSED", container={"securityContext": sc}))
    out = await output(api, "local")
    assert "Permission denied" in out and "MKDIR-REFUSED" in out
    missing = {"seccompProfile": {"type": "Localhost", "localhostProfile": "nope.json"}}
    await api.create(pod("nolocal", "true", container={"securityContext": missing}))
    obj = await wait_pod(api, "nolocal", lambda o: ((o.get("status") or {}).get("containerStatuses") or [{}])[0]
                         .get("state", {}).get("waiting", {}).get("reason") == "CreateContainerConfigError")
    assert "nope.json" in obj["status"]["containerStatuses"][0]["state"]["waiting"]["message"]


async def test_pod_cgroup_has_the_pids_limit_and_node_parent_too(api, cluster) -> None:
    # (a shell exits when it cannot fork: the loop runs in a subshell)
    created = await api.create(pod("forker", "(for i in $(seq 100); do sleep 30 & done) 2>&1; echo STARTED; sleep 30"))
    uid = created["metadata"]["uid"]
    await wait_pod(api, "forker", phase("Running"))
    pids_root = Path("/sys/fs/cgroup/pids") if Path("/sys/fs/cgroup/pids").is_dir() else Path("/sys/fs/cgroup")
    parent = pids_root / cluster["parent"]
    assert (parent / f"pod-{uid}" / "pids.max").read_text().strip() == str(POD_MAX_PIDS)
    node_limit = (parent / "pids.max").read_text().strip()
    assert node_limit.isdigit() and int(node_limit) < int(Path("/proc/sys/kernel/pid_max").read_text())

    deadline = time.monotonic() + 20
    text = ""
    while "STARTED" not in text:
        assert time.monotonic() < deadline, f"the forker never finished forking: {text!r}"
        await asyncio.sleep(0.2)
        text = b"".join([chunk async for chunk in api.logs("default", "forker")]).decode()
    assert "can't fork" in text
    assert int((parent / f"pod-{uid}" / "pids.current").read_text()) <= POD_MAX_PIDS


async def test_pods_past_capacity_fail_with_out_of_pods(api) -> None:
    for i in range(MAX_PODS):
        await api.create(pod(f"cap{i}", "sleep 60"))
    for i in range(MAX_PODS):
        await wait_pod(api, f"cap{i}", phase("Running"))
    await api.create(pod("onetoomany", "sleep 60"))
    rejected = await wait_pod(api, "onetoomany", phase("Failed"))
    assert rejected["status"]["reason"] == "OutOfpods"
    assert rejected["status"]["message"] == ("Pod was rejected: Node didn't have enough resource: pods, "
                                             f"requested: 1, used: {MAX_PODS}, capacity: {MAX_PODS}")
    assert any(e["reason"] == "OutOfpods" for e in await events(api, "onetoomany"))
    # a pod that is gone frees its slot: a graceful delete ends when the agent has stopped
    # and cleaned it up (its last step is the final delete)
    await api.delete("pods", "cap0", "default", grace_seconds=1)
    deadline = time.monotonic() + 20
    while True:
        try:
            await api.get("pods", "cap0", "default")
        except NotFound:
            break
        assert time.monotonic() < deadline, "the agent did not finish deleting cap0"
        await asyncio.sleep(0.05)
    await api.create(pod("fits", "sleep 60"))
    await wait_pod(api, "fits", phase("Running"))


async def test_writing_past_the_ephemeral_storage_limit_evicts(api) -> None:
    limits = {"resources": {"limits": {"ephemeral-storage": "10Mi"}}}
    await api.create(pod("filler", "dd if=/dev/zero of=/big bs=1M count=20; sync; sleep 60", container=limits))
    evicted = await wait_pod(api, "filler", phase("Failed"))
    assert evicted["status"]["reason"] == "Evicted"
    message = evicted["status"]["message"]
    assert message.startswith("Pod ephemeral local storage usage exceeds the total limit of containers 10Mi. Usage: ")
    terminated = evicted["status"]["containerStatuses"][0]["state"].get("terminated") or {}
    assert terminated.get("exitCode") == 137, evicted["status"]["containerStatuses"]
    assert any(e["reason"] == "Evicted" and e["message"] == message for e in await events(api, "filler"))


async def test_empty_dir_past_its_size_limit_evicts(api) -> None:
    spec = pod("dirfiller", "dd if=/dev/zero of=/scratch/big bs=1M count=12; sync; sleep 60",
               container={"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]},
               volumes=[{"name": "scratch", "emptyDir": {"sizeLimit": "5Mi"}}])
    await api.create(spec)
    evicted = await wait_pod(api, "dirfiller", phase("Failed"))
    assert evicted["status"]["reason"] == "Evicted"
    assert evicted["status"]["message"].startswith('Usage of EmptyDir volume "scratch" exceeds the limit "5Mi". Usage: ')


async def test_pod_within_its_limits_is_left_alone_and_memory_empty_dir_is_sized_by_the_memory_limit(api) -> None:
    spec = pod("tidy", "dd if=/dev/zero of=/f bs=1M count=2; df -k /cache | tail -1; sleep 2; echo DONE",
               container={"resources": {"limits": {"ephemeral-storage": "50Mi", "memory": "32Mi"}},
                          "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]},
               volumes=[{"name": "cache", "emptyDir": {"medium": "Memory"}}])
    await api.create(spec)
    out = await output(api, "tidy")
    assert "DONE" in out
    assert (await api.get("pods", "tidy", "default"))["status"]["phase"] == "Succeeded"
    df = next(line for line in out.splitlines() if line.endswith("/cache"))
    assert df.split()[1] == str(32 * 1024), out     # tmpfs size = the pod's memory limit
