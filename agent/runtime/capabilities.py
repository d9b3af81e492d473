"""Linux capabilities by name: the default set, add/drop, and applying them.

A container's root is not the host's root: it keeps only the capabilities in
Docker's (and containerd's) default list unless the pod asks for more with
`securityContext.capabilities.add`, fewer with `drop`, or everything with
`privileged: true`. `resolve()` turns those names into capability numbers in the
agent (so bad names fail early with a clear message); `apply_bounding()` and
`apply_sets()` run in the container process between fork and exec
(container_init.py decides when).
"""

from __future__ import annotations

from agent.runtime import linux

# Capability numbers from <linux/capability.h>.
NUMBERS: dict[str, int] = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4,
    "KILL": 5, "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9,
    "NET_BIND_SERVICE": 10, "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13,
    "IPC_LOCK": 14, "IPC_OWNER": 15, "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18,
    "SYS_PTRACE": 19, "SYS_PACCT": 20, "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23,
    "SYS_RESOURCE": 24, "SYS_TIME": 25, "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28,
    "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30, "SETFCAP": 31, "MAC_OVERRIDE": 32,
    "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35, "BLOCK_SUSPEND": 36, "AUDIT_READ": 37,
    "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}

# Docker's default set (moby oci/caps/defaults.go), which containerd's CRI uses too.
DEFAULT: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)


def _number(name: str, *, field: str) -> int | None:
    """The number of a capability name ("NET_ADMIN", "CAP_NET_ADMIN", "net_admin"); None for ALL."""
    if not isinstance(name, str):
        raise ValueError(f"{field}: capability names must be strings, got {name!r}")
    key = name.upper()
    if key.startswith("CAP_"):
        key = key[4:]
    if key == "ALL":
        return None
    if key not in NUMBERS:
        raise ValueError(f"{field}: unknown capability {name!r}")
    return NUMBERS[key]


def resolve(*, add: list[str], drop: list[str], privileged: bool, available: set[int]) -> list[int]:
    """The sorted capability numbers a container gets.

    privileged -> every capability the agent itself holds (`available`); otherwise
    DEFAULT, plus `add`, minus `drop` ("ALL" works in both, as in Kubernetes: drop
    ALL then add a few). A capability the agent does not hold cannot be given: an
    explicit add of one is an error, a default one is left out.
    """
    if privileged:
        return sorted(available)
    caps = {NUMBERS[n] for n in DEFAULT}
    add_nums = [_number(n, field="capabilities.add") for n in add]
    drop_nums = [_number(n, field="capabilities.drop") for n in drop]
    if None in drop_nums:
        caps = set()
    caps -= {n for n in drop_nums if n is not None}
    if None in add_nums:
        caps = set(available)
    for name, number in zip(add, add_nums):
        if number is not None and number not in available:
            raise ValueError(f"capabilities.add: {name}: the node agent does not hold this capability itself")
        if number is not None:
            caps.add(number)
    return sorted(caps & available)


def names(caps: list[int]) -> list[str]:
    """"CAP_<NAME>" for each capability number (as seccomp profiles name them)."""
    by_number = {number: name for name, number in NUMBERS.items()}
    return [f"CAP_{by_number[c]}" if c in by_number else f"CAP_{c}" for c in caps]


def mask(caps: list[int]) -> int:
    bits = 0
    for c in caps:
        bits |= 1 << c
    return bits


def apply_bounding(caps: list[int], last_cap: int) -> None:
    """Drop every capability not in `caps` from the bounding set.

    The bounding set caps what any later execve can give back, even to a uid-0
    process, so this is what really takes a capability away from a container's
    root. Needs CAP_SETPCAP, so it runs before the uid change.
    """
    keep = set(caps)
    for cap in range(last_cap + 1):
        if cap not in keep:
            linux.prctl(linux.PR_CAPBSET_DROP, cap, what=f"dropping capability {cap} from the bounding set")
    linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL, what="clearing ambient capabilities")


def apply_sets(caps: list[int]) -> None:
    """Set effective = permitted = `caps`, inheritable = none (after the uid change).

    Inheritable stays empty as in runc since CVE-2022-24769. A non-root user still
    loses these at execve (no ambient set), exactly as with Docker.
    """
    bits = mask(caps)
    linux.capset(effective=bits, permitted=bits, inheritable=0)
