"""Which device nodes a container may use: the allow-list and its two encodings.

A container's root may hold CAP_MKNOD, and /dev is only a tmpfs: nothing in the
filesystem stops `mknod /dev/x b 7 0` followed by reading the host's disk. The
device controller does. Like runc's default (libcontainer/specconv AllowedDevices,
which containerd's CRI and Docker use), a container may create (mknod) and open
only these, everything else is refused with EPERM:

    c 1:3  null     c 1:5  zero     c 1:7  full     c 1:8  random     c 1:9  urandom
    c 5:0  tty      c 5:2  ptmx     c 136:*  the pty slaves of its own devpts (/dev/pts/N)

(runc also allows mknod of *any* device; Skiff allows mknod only of these, so the
attack fails already at mknod.) Privileged containers get every device, as in
Kubernetes: the runtime then sets no rule at all.

`DeviceRule` is one "type major:minor access" entry; the drivers turn a list of
them into their own form:

- v1 (v1_controllers.DevicesController): `a` into devices.deny, then one line per
  rule into devices.allow, in the container's own group of the devices hierarchy;
- v2 (devicefilter.py): an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE,
  attached to the container's group (bpf.py).
"""

from __future__ import annotations

from dataclasses import dataclass

WILDCARD = -1


@dataclass(frozen=True)
class DeviceRule:
    """Allow `access` (a subset of "rwm") on devices of `type` ("c", "b" or "a" for both)
    with `major`:`minor` (WILDCARD for any)."""

    type: str
    major: int
    minor: int
    access: str = "rwm"

    def __post_init__(self) -> None:
        if self.type not in ("a", "b", "c"):
            raise ValueError(f"device rule type {self.type!r}: must be 'a', 'b' or 'c'")
        if not self.access or set(self.access) - set("rwm"):
            raise ValueError(f"device rule access {self.access!r}: must be a non-empty subset of 'rwm'")
        for what, number in (("major", self.major), ("minor", self.minor)):
            if number != WILDCARD and not 0 <= number < 2**32:
                raise ValueError(f"device rule {what} {number}: must be WILDCARD or 0..2^32-1")

    def v1_line(self) -> str:
        """The devices.allow line, e.g. "c 136:* rwm"."""
        if self.type == "a":
            return "a"
        major = "*" if self.major == WILDCARD else str(self.major)
        minor = "*" if self.minor == WILDCARD else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


DEFAULT_ALLOWED: tuple[DeviceRule, ...] = (
    DeviceRule("c", 1, 3),          # /dev/null
    DeviceRule("c", 1, 5),          # /dev/zero
    DeviceRule("c", 1, 7),          # /dev/full
    DeviceRule("c", 1, 8),          # /dev/random
    DeviceRule("c", 1, 9),          # /dev/urandom
    DeviceRule("c", 5, 0),          # /dev/tty
    DeviceRule("c", 5, 2),          # /dev/ptmx
    DeviceRule("c", 136, WILDCARD),  # /dev/pts/N
)


def rules_to_json(rules: tuple[DeviceRule, ...] | list[DeviceRule] | None) -> list[list] | None:
    """A LaunchPlan's form of a rule list (None: every device)."""
    return None if rules is None else [[r.type, r.major, r.minor, r.access] for r in rules]


def rules_from_json(data: list[list] | None) -> list[DeviceRule] | None:
    return None if data is None else [DeviceRule(*item) for item in data]
