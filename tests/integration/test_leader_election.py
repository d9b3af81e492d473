"""Leader election: three real `skiff-controlplane` processes on one etcd; exactly one leads
(and says so in the Lease kube-system/skiff-controlplane); SIGKILL it and another takes over
within the lease TTL; every process serves the API throughout."""

from __future__ import annotations

import importlib.util
import json
import time
import uuid
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from procs import ControlPlane, wait_for
from protos import skiff_pb2 as pb
from protos import skiff_pb2_grpc as pb_grpc

LEASE_SECONDS = 2
FAILOVER_LIMIT = 10.0


def call(cp: ControlPlane, method: str, request: object) -> object:
    with cp.credentials.sync_channel(cp.address) as channel:
        return getattr(pb_grpc.ApiStub(channel), method)(request, timeout=3)


def leader_lease(cp: ControlPlane) -> dict | None:
    try:
        reply = call(cp, "Get", pb.GetRequest(kind="leases", namespace="kube-system", name="skiff-controlplane"))
    except grpc.RpcError:
        return None
    return json.loads(reply.object)


def leaders_in_logs(planes: list[ControlPlane]) -> list[ControlPlane]:
    return [cp for cp in planes if "became the leader" in Path(cp.log_path).read_text()]


@pytest.fixture
def planes(etcd, tmp_path) -> Iterator[list[ControlPlane]]:
    prefix = f"/leader-{uuid.uuid4().hex[:8]}"
    extra = ["--etcd-prefix", prefix, "--leader-lease-seconds", str(LEASE_SECONDS)]
    if importlib.util.find_spec("controlplane.scheduler.scheduler") is None:
        extra.append("--no-scheduler")  # the scheduler is not there yet; the controllers still need a leader
    started: list[ControlPlane] = []
    try:
        for i in range(3):
            started.append(ControlPlane(tmp_path / f"cp{i}", etcd_endpoints=etcd.endpoint, extra_args=extra).start())
        yield started
    finally:
        for cp in started:
            cp.stop()


def test_one_leader_and_failover_within_the_lease(planes):
    by_pid = {cp.proc.pid: cp for cp in planes}

    def current_leader() -> ControlPlane | None:
        lease = leader_lease(planes[0]) if planes[0].proc.poll() is None else leader_lease(planes[1])
        if not lease:
            return None
        pid = int(lease["spec"]["holderIdentity"].rsplit("-", 1)[1])
        return by_pid.get(pid)

    leader = wait_for(current_leader, timeout=15, what="a leader recorded in kube-system/skiff-controlplane")
    wait_for(lambda: leaders_in_logs(planes), timeout=5, what="the leader's log line")
    assert leaders_in_logs(planes) == [leader], "exactly one process became the leader"
    first = leader_lease(leader)
    assert first["spec"]["leaseDurationSeconds"] == LEASE_SECONDS

    # Every process serves the API: write through one follower, read through the other.
    followers = [cp for cp in planes if cp is not leader]
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hello", "namespace": "default"},
          "data": {"k": "v"}}
    call(followers[0], "Create", pb.CreateRequest(object=json.dumps(cm).encode()))
    got = json.loads(call(followers[1], "Get", pb.GetRequest(kind="configmaps", namespace="default",
                                                               name="hello")).object)
    assert got["data"] == {"k": "v"}

    killed_at = time.monotonic()
    leader.kill()  # SIGKILL: no chance to step down; the etcd lease has to expire

    def successor() -> ControlPlane | None:
        lease = leader_lease(followers[0])
        if not lease or lease["spec"]["holderIdentity"] == first["spec"]["holderIdentity"]:
            return None
        return by_pid.get(int(lease["spec"]["holderIdentity"].rsplit("-", 1)[1]))

    new_leader = wait_for(successor, timeout=FAILOVER_LIMIT + 5, interval=0.1, what="another leader")
    elapsed = time.monotonic() - killed_at
    assert new_leader in followers
    assert elapsed <= FAILOVER_LIMIT, f"failover took {elapsed:.1f}s"
    assert leader_lease(new_leader)["spec"]["leaseTransitions"] == first["spec"]["leaseTransitions"] + 1
    assert leaders_in_logs(followers) == [new_leader]
    for cp in followers:  # both survivors still serve
        assert json.loads(call(cp, "Get", pb.GetRequest(kind="configmaps", namespace="default",
                                                         name="hello")).object)["data"] == {"k": "v"}
    print(f"failover after SIGKILL of the leader: {elapsed:.2f}s (lease {LEASE_SECONDS}s)")
