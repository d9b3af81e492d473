"""Ephemeral storage accounting: what is limited, how usage is measured, which verdict wins."""

from __future__ import annotations

import os
from pathlib import Path

from agent.ephemeral import PodPaths, StorageLimits, disk_usage, limits_of, measure, verdict

Mi = 1024 * 1024


def pod(containers, volumes=(), init=()) -> dict:
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"containers": list(containers), "initContainers": list(init), "volumes": list(volumes)}}


def c(name: str, limit: str | None = None) -> dict:
    return {"name": name, **({"resources": {"limits": {"ephemeral-storage": limit}}} if limit else {})}


def test_limits_of_sums_containers_and_skips_memory_empty_dirs() -> None:
    limits = limits_of(pod([c("a", "100Mi"), c("b", "50Mi"), c("free")],
                           volumes=[{"name": "disk", "emptyDir": {"sizeLimit": "10Mi"}},
                                    {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "10Mi"}},
                                    {"name": "plain", "emptyDir": {}}],
                           init=[c("setup", "200Mi")]))
    assert limits.containers == {"a": (100 * Mi, "100Mi"), "b": (50 * Mi, "50Mi"), "setup": (200 * Mi, "200Mi")}
    assert limits.pod == (200 * Mi, "200Mi")        # the largest init container wins over the 150Mi sum
    assert limits.empty_dirs == {"disk": (10 * Mi, "10Mi")}
    assert not limits_of(pod([c("x")]))


def test_single_limit_keeps_its_text() -> None:
    assert limits_of(pod([c("a", "100M")])).pod == (100 * 10**6, "100M")


def test_verdict_order_and_messages() -> None:
    limits = StorageLimits(containers={"a": (10 * Mi, "10Mi")}, pod=(10 * Mi, "10Mi"),
                           empty_dirs={"scratch": (5 * Mi, "5Mi")})
    assert verdict(limits, {"a": 1 * Mi}, {"scratch": 1 * Mi}) is None
    assert verdict(limits, {"a": 1 * Mi}, {"scratch": 6 * Mi}) == \
        'Usage of EmptyDir volume "scratch" exceeds the limit "5Mi". Usage: 6.0Mi.'
    assert verdict(limits, {"a": 8 * Mi}, {"scratch": 4 * Mi}) == \
        "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi. Usage: 12Mi."
    only_container = StorageLimits(containers={"a": (10 * Mi, "10Mi"), "b": (90 * Mi, "90Mi")})
    assert verdict(only_container, {"a": 11 * Mi, "b": 0}, {}) == \
        'Container a exceeded its local ephemeral storage limit "10Mi". Usage: 11Mi.'


def test_disk_usage_counts_blocks_and_hard_links_once(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    with open(upper / "d" / "big", "wb") as f:
        f.write(os.urandom(3 * Mi))
    os.link(upper / "d" / "big", upper / "again")
    (upper / "sparse").write_bytes(b"")
    os.truncate(upper / "sparse", 100 * Mi)          # allocated: nothing
    used = disk_usage([upper, tmp_path / "missing"])
    assert 3 * Mi <= used < 3 * Mi + 64 * 1024


def test_measure_adds_layers_logs_and_volumes(tmp_path: Path) -> None:
    for name, size in (("upper", 2), ("logs", 1), ("vol", 2)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_bytes(b"x" * size * Mi)
    paths = PodPaths(containers={"a": [tmp_path / "upper", tmp_path / "logs"]},
                     local_volumes={"scratch": tmp_path / "vol"})
    message = measure(StorageLimits(containers={"a": (4 * Mi, "4Mi")}, pod=(4 * Mi, "4Mi")), paths)
    assert message is not None and message.startswith(
        "Pod ephemeral local storage usage exceeds the total limit of containers 4Mi.")
    assert measure(StorageLimits(containers={"a": (4 * Mi, "4Mi")}), paths) is None    # 3Mi in the container
