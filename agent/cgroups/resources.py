"""What a pod or container asks for, and how each ask becomes a cgroup value.

`Resources` is the driver-neutral request the runtime hands to a `CgroupManager`
(see manager.py). The conversions below are Kubernetes' own (kubelet's
`MilliCPUToShares`, `MilliCPUToQuota` and `CpuSharesToCpuWeight`), so a pod gets
the same CPU share on Skiff as on a kubelet, and the same on cgroup v1 and v2:

    request 250m  -> cpu.shares 256          (v1)  -> cpu.weight 10     (v2)
    limit   500m  -> cfs_quota_us 50000 / cfs_period_us 100000 (v1) -> cpu.max "50000 100000" (v2)

A field left as None means "no limit" (quota -1 / "max", memory -1 / "max",
pids "max"). A missing CPU request means what it means in Kubernetes for a
BestEffort container: the minimum share (2 shares, weight 1). The v1 driver
(v1.py) and v2 driver (v2.py) only format these numbers into their files.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

CPU_PERIOD_US = 100_000          # the CFS period Kubernetes uses: 100ms
MIN_QUOTA_US = 1_000             # the kernel refuses quotas under 1ms
MIN_SHARES = 2                   # the kernel's minimum cpu.shares
MAX_SHARES = 262_144             # the kernel's maximum cpu.shares
SHARES_PER_CPU = 1024            # one whole CPU (1000m) is worth 1024 shares


@dataclass(frozen=True)
class Resources:
    """Limits and requests for one cgroup; None means unlimited / not requested."""

    cpu_limit_millis: int | None = None
    cpu_request_millis: int | None = None
    memory_limit_bytes: int | None = None
    pids_limit: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"Resources.{f.name} must be an integer or None, got {value!r}")
            smallest = 0 if f.name == "cpu_request_millis" else 1
            if value < smallest:
                raise ValueError(f"Resources.{f.name} must be >= {smallest}, got {value}")


def cpu_shares(request_millis: int | None) -> int:
    """v1 cpu.shares for a CPU request (kubelet's MilliCPUToShares)."""
    if not request_millis:
        return MIN_SHARES
    shares = request_millis * SHARES_PER_CPU // 1000
    return max(MIN_SHARES, min(MAX_SHARES, shares))


def cpu_weight(request_millis: int | None) -> int:
    """v2 cpu.weight (1..10000) for a CPU request, via shares (kubelet's CpuSharesToCpuWeight)."""
    shares = cpu_shares(request_millis)
    return 1 + ((shares - 2) * 9999) // 262142


def cpu_quota_us(limit_millis: int | None) -> int | None:
    """CFS quota per CPU_PERIOD_US for a CPU limit (kubelet's MilliCPUToQuota); None = unlimited."""
    if limit_millis is None:
        return None
    return max(MIN_QUOTA_US, limit_millis * CPU_PERIOD_US // 1000)


def cpu_max(limit_millis: int | None) -> str:
    """The v2 cpu.max line: "<quota> <period>" or "max <period>"."""
    quota = cpu_quota_us(limit_millis)
    return f"{'max' if quota is None else quota} {CPU_PERIOD_US}"
