"""IPAM of the pod network (agent/network/ipam.py): addresses of a node's pod CIDR,
persisted so that no address leaks or goes to two pods across restarts."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from agent.network import IPAMExhausted, NetworkError
from agent.network.ipam import IPAM


def ipam(tmp_path: Path, cidr: str = "198.19.1.0/24") -> IPAM:
    return IPAM(tmp_path / "ipam.json", cidr).load()


def test_skips_network_gateway_and_broadcast(tmp_path: Path) -> None:
    pool = ipam(tmp_path, "198.19.1.0/29")                 # .0 network, .1 gateway, .7 broadcast
    assert pool.capacity == 5
    got = [pool.allocate(f"pod-{i}") for i in range(5)]
    assert got == [IPv4Address(f"198.19.1.{i}") for i in range(2, 7)]
    assert pool.gateway == IPv4Address("198.19.1.1")


def test_allocate_is_idempotent_per_owner(tmp_path: Path) -> None:
    pool = ipam(tmp_path)
    first = pool.allocate("a")
    assert pool.allocate("a") == first
    assert pool.in_use == 1
    assert pool.get("a") == first and pool.get("b") is None


def test_release_and_round_robin_reuse(tmp_path: Path) -> None:
    pool = ipam(tmp_path, "198.19.1.0/29")
    a, b = pool.allocate("a"), pool.allocate("b")
    assert pool.release("a") == a
    assert pool.release("a") is None                       # idempotent
    c = pool.allocate("c")
    assert c not in (a, b), "a freed address is used again only after the others"
    for owner in ("d", "e"):
        pool.allocate(owner)
    assert pool.allocate("f") == a                         # now it is the only free one


@pytest.mark.parametrize("cidr, capacity", [("198.19.1.0/24", 253), ("198.19.1.0/30", 1)])
def test_exhaustion_names_cidr_and_count(tmp_path: Path, cidr: str, capacity: int) -> None:
    pool = ipam(tmp_path, cidr)
    for i in range(capacity):
        pool.allocate(f"pod-{i}")
    with pytest.raises(IPAMExhausted) as info:
        pool.allocate("one-too-many")
    assert str(info.value) == f"no free IP address left in pod CIDR {cidr} ({capacity} in use)"
    assert isinstance(info.value, NetworkError)
    pool.release("pod-0")
    assert pool.allocate("one-too-many")


def test_persisted_and_reloaded_without_double_assignment(tmp_path: Path) -> None:
    pool = ipam(tmp_path)
    taken = {f"pod-{i}": pool.allocate(f"pod-{i}") for i in range(10)}
    pool.release("pod-3")
    del taken["pod-3"]
    again = ipam(tmp_path)                                  # an agent restart
    assert again.allocations() == taken
    fresh = {again.allocate(f"new-{i}") for i in range(20)}
    assert not fresh & set(taken.values())
    assert len(fresh) == 20
    assert again.in_use == 29


def test_cursor_survives_reload(tmp_path: Path) -> None:
    pool = ipam(tmp_path)
    a = pool.allocate("a")
    pool.release("a")
    assert ipam(tmp_path).allocate("b") != a               # not handed straight back after a restart


def test_state_file_is_written_atomically(tmp_path: Path) -> None:
    pool = ipam(tmp_path)
    pool.allocate("a")
    assert [p.name for p in tmp_path.iterdir()] == ["ipam.json"]     # no temp file left
    document = json.loads((tmp_path / "ipam.json").read_text())
    assert document["podCIDR"] == "198.19.1.0/24"
    assert document["allocations"] == {"a": "198.19.1.2"}


def test_damaged_file_is_an_error_not_an_empty_pool(tmp_path: Path) -> None:
    (tmp_path / "ipam.json").write_text("{not json")
    with pytest.raises(NetworkError, match="ipam.json is damaged"):
        ipam(tmp_path)


@pytest.mark.parametrize("allocations, problem", [
    ({"a": "198.19.1.5", "b": "198.19.1.5"}, "assigned twice"),
    ({"a": "198.19.1.1"}, "not a pod address"),              # the gateway
    ({"a": "10.0.0.5"}, "not a pod address"),
])
def test_inconsistent_file_is_refused(tmp_path: Path, allocations: dict, problem: str) -> None:
    (tmp_path / "ipam.json").write_text(json.dumps({"podCIDR": "198.19.1.0/24", "allocations": allocations}))
    with pytest.raises(NetworkError, match=problem):
        ipam(tmp_path)


def test_other_pod_cidr_with_assignments_is_refused(tmp_path: Path) -> None:
    ipam(tmp_path, "198.19.1.0/24").allocate("a")
    with pytest.raises(NetworkError, match="holds 1 addresses of pod CIDR 198.19.1.0/24, but this node's "
                                           "pod CIDR is 198.19.2.0/24"):
        ipam(tmp_path, "198.19.2.0/24")


def test_other_pod_cidr_without_assignments_is_adopted(tmp_path: Path) -> None:
    pool = ipam(tmp_path, "198.19.1.0/24")
    pool.allocate("a")
    pool.release("a")
    assert ipam(tmp_path, "198.19.2.0/24").allocate("b") == IPv4Address("198.19.2.2")


@pytest.mark.parametrize("cidr, problem", [
    ("198.19.1.0/31", "too small"), ("198.19.1.5/24", "has host bits set"),
    ("fd00::/64", "only IPv4"), ("nonsense", "does not appear to be"),
])
def test_bad_pod_cidr(tmp_path: Path, cidr: str, problem: str) -> None:
    with pytest.raises(NetworkError, match=problem):
        IPAM(tmp_path / "ipam.json", cidr)


def test_failed_save_leaves_memory_unchanged(tmp_path: Path) -> None:
    pool = ipam(tmp_path)
    pool.allocate("a")
    pool.path = tmp_path / "missing-dir" / "file" / "ipam.json"
    (tmp_path / "missing-dir").write_text("a file where a directory is needed")
    with pytest.raises(NetworkError, match="could not save"):
        pool.allocate("b")
    assert pool.get("b") is None and pool.in_use == 1
    with pytest.raises(NetworkError, match="could not save"):
        pool.release("a")
    assert pool.get("a") is not None
