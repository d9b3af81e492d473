"""High availability, tested as an operator would run it: 3 etcd members and 2 control
planes on loopback. While `ctl apply` runs in a loop against both control planes
(`--server a,b`), the leading control plane and the etcd member both control planes are
connected to are killed with SIGKILL. Every apply still succeeds (the client's bounded
retries through the failover), the other control plane takes over scheduling, and every
object an apply acknowledged is there afterwards."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time

import pytest

from controlplane.client import Client
from hollow_harness import hollow_nodes
from procs import REPO, ControlPlane, EtcdCluster

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

POD = """apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: skiff.local/none:1, resources: {requests: {cpu: 10m, memory: 8Mi}}}]
"""


def ctl_apply(server: str, name: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", "apply", "-f", "-", "--server", server],
                          input=POD % name, capture_output=True, text=True, cwd=REPO, env=env, timeout=60)


async def leader_pid(client: Client) -> int:
    lease = await client.get("leases", "skiff-controlplane", "kube-system")
    return int(lease["spec"]["holderIdentity"].rsplit("-", 1)[1])


async def test_kill_the_leading_control_plane_and_an_etcd_member_while_applying(tmp_path):
    members = EtcdCluster(tmp_path / "etcd").start()
    cps: list[ControlPlane] = []
    try:
        for i in range(2):
            cp = ControlPlane(tmp_path / f"cp{i}", etcd_endpoints=members.endpoints,
                              extra_args=["--leader-lease-seconds", "3", "--node-monitor-grace", "30"])
            if cps:   # control planes of one cluster share its CA (docs/OPERATIONS.md)
                (cp.state_dir / "pki").mkdir(parents=True)
                for name in ("ca.crt", "ca.key"):
                    shutil.copy2(cps[0].state_dir / "pki" / name, cp.state_dir / "pki" / name)
            cps.append(cp.start())
        servers = ",".join(cp.address for cp in cps)
        # ctl with the administrator's credential (admin.conf) and both servers.
        env = {**os.environ, "PYTHONPATH": str(REPO), "SKIFF_CONFIG": str(cps[0].admin_config)}
        async with Client(servers, credentials=cps[0].credentials, timeout=10) as client, hollow_nodes(client, 2, lease_renew_seconds=2):
            deadline = time.monotonic() + 30
            while True:
                try:
                    leader = await leader_pid(client)
                    break
                except Exception:
                    assert time.monotonic() < deadline, "no control plane became the leader"
                    await asyncio.sleep(0.2)
            leading = next(cp for cp in cps if cp.proc.pid == leader)
            survivor = next(cp for cp in cps if cp is not leading)

            acknowledged: list[str] = []
            failures: list[str] = []
            stop = asyncio.Event()

            # A watch on the survivor, open through the etcd member's death: its API server's
            # etcd watch moves to another member and resumes from the last revision it had,
            # so this client sees every pod, none missed, without its own watch breaking.
            seen: set[str] = set()

            async def watch_survivor() -> None:
                async with Client(survivor.address, credentials=survivor.credentials) as direct:
                    async for event in direct.watch("pods", "default"):
                        seen.add(event.object["metadata"]["name"])
            watcher = asyncio.create_task(watch_survivor())

            async def apply_loop() -> None:
                i = 0
                while not stop.is_set():
                    name = f"ha-{i}"
                    r = await asyncio.to_thread(ctl_apply, servers, name, env)
                    if r.returncode == 0:
                        acknowledged.append(name)
                    else:
                        failures.append(f"{name}: {r.stderr.strip()}")
                    i += 1

            loop_task = asyncio.create_task(apply_loop())
            while len(acknowledged) < 3:
                await asyncio.sleep(0.1)
            before_kill = len(acknowledged)
            # Both control planes talk to the first member (pick_first): kill that one.
            leading.kill()
            members.kill("m0")
            killed = time.monotonic()
            while len(acknowledged) < before_kill + 8 and time.monotonic() - killed < 90:
                await asyncio.sleep(0.2)
            stop.set()
            await loop_task
            assert failures == [], failures
            assert len(acknowledged) >= before_kill + 8, "applies stalled after the kills"

            # The survivor leads now, and scheduling went on: every acknowledged pod is
            # there and bound to a node, those applied after the kills included.
            deadline = time.monotonic() + 60
            while True:
                pods = {p["metadata"]["name"]: p for p in (await client.list("pods", "default")).items}
                unbound = [n for n in acknowledged if not (pods.get(n, {}).get("spec") or {}).get("nodeName")]
                missing = [n for n in acknowledged if n not in pods]
                assert missing == [], f"acknowledged but lost: {missing}"
                if not unbound:
                    break
                assert time.monotonic() < deadline, f"never scheduled: {unbound}"
                await asyncio.sleep(0.5)
            assert await leader_pid(client) == survivor.proc.pid
            deadline = time.monotonic() + 10
            while not set(acknowledged) <= seen:
                assert not watcher.done(), f"the watch on the survivor ended: {watcher!r}"
                assert time.monotonic() < deadline, f"the watch missed {sorted(set(acknowledged) - seen)}"
                await asyncio.sleep(0.1)
            watcher.cancel()
            print(f"{len(acknowledged)} applies acknowledged ({before_kill} before the kills), none failed")
    finally:
        for cp in cps:
            cp.stop()
        members.stop()


async def test_the_etcd_client_follows_the_member_list(tmp_path):
    """Given one member's endpoint only, the control plane learns the others from etcd's
    member list, and keeps serving when that member dies."""
    members = EtcdCluster(tmp_path / "etcd").start()
    cp = None
    try:
        cp = ControlPlane(tmp_path / "cp", etcd_endpoints=members.endpoint("m0"),
                          extra_args=["--no-scheduler", "--no-controllers"]).start()
        deadline = time.monotonic() + 20
        while "etcd members changed" not in cp.log_path.read_text():
            assert time.monotonic() < deadline, "the member list was not followed"
            await asyncio.sleep(0.2)
        members.kill("m0")
        async with Client(cp.address, credentials=cp.credentials, timeout=10) as client:
            await client.apply({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "after", "namespace": "default"}, "data": {"k": "v"}})
            assert (await client.get("configmaps", "after", "default"))["data"] == {"k": "v"}
    finally:
        if cp:
            cp.stop()
        members.stop()
