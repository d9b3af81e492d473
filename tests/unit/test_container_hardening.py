"""The device allow-list's two encodings and the seccomp compiler, without running containers.

The eBPF program is checked instruction by instruction against runc's layout and by
evaluating it (devicefilter.evaluate) on the accesses that matter; the node tests
(tests/node/test_runtime_hardening.py) run it in the kernel.
"""

from __future__ import annotations

import base64
import struct

import pytest

from agent.cgroups import devicefilter
from agent.cgroups.devices import DEFAULT_ALLOWED, WILDCARD, DeviceRule
from agent.runtime import seccomp


def test_v1_lines() -> None:
    assert [r.v1_line() for r in DEFAULT_ALLOWED] == [
        "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm"]
    assert DeviceRule("b", WILDCARD, WILDCARD, "m").v1_line() == "b *:* m"


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="access"):
        DeviceRule("c", 1, 3, "rwx")
    with pytest.raises(ValueError, match="type"):
        DeviceRule("x", 1, 3)


@pytest.mark.parametrize("type_, major, minor, access, allowed", [
    ("c", 1, 3, "rw", True),           # /dev/null
    ("c", 1, 9, "r", True),            # /dev/urandom
    ("c", 1, 3, "m", True),            # mknod of /dev/null
    ("c", 136, 7, "rw", True),         # /dev/pts/7
    ("c", 5, 2, "rw", True),           # /dev/ptmx
    ("b", 7, 0, "m", False),           # mknod of a loop device
    ("b", 7, 0, "r", False),           # reading it
    ("b", 8, 0, "rw", False),          # /dev/sda
    ("c", 10, 237, "rw", False),       # /dev/loop-control
    ("c", 1, 1, "r", False),           # /dev/mem
    ("b", 1, 3, "rw", False),          # a block device with null's numbers
])
def test_default_program_allows_exactly_the_list(type_, major, minor, access, allowed) -> None:
    prog = devicefilter.program(DEFAULT_ALLOWED)
    assert devicefilter.evaluate(prog, type=type_, major=major, minor=minor, access=access) is allowed


def test_access_subset_is_checked() -> None:
    prog = devicefilter.program([DeviceRule("c", 1, 3, "r")])
    assert devicefilter.evaluate(prog, type="c", major=1, minor=3, access="r")
    assert not devicefilter.evaluate(prog, type="c", major=1, minor=3, access="rw")
    assert not devicefilter.evaluate(prog, type="c", major=1, minor=3, access="m")


def test_program_layout_matches_runc() -> None:
    """Prologue of six loads/shifts; a block per rule ending in r0 = 1, exit; epilogue r0 = 0, exit."""
    prog = devicefilter.program([DeviceRule("c", 136, WILDCARD)])
    insns = [struct.unpack_from("<BBhi", prog, i) for i in range(0, len(prog), 8)]
    assert insns[0] == (0x61, 0x12, 0, 0)           # r2 = *(u32 *)(r1 + 0)
    assert insns[1] == (0x54, 0x02, 0, 0xFFFF)      # w2 &= 0xffff
    assert insns[3] == (0x74, 0x03, 0, 16)          # w3 >>= 16
    assert insns[6] == (0x55, 0x02, 3, 2)           # if r2 != 2 (char) goto +3 (next block)
    assert insns[7] == (0x55, 0x04, 2, 136)         # if r4 != 136 goto +2
    assert insns[8:10] == [(0xB4, 0x00, 0, 1), (0x95, 0, 0, 0)]
    assert insns[10:] == [(0xB4, 0x00, 0, 0), (0x95, 0, 0, 0)]


def test_no_rules_denies_everything() -> None:
    prog = devicefilter.program([])
    assert not devicefilter.evaluate(prog, type="c", major=1, minor=3, access="r")


CAPS = ["CAP_CHOWN", "CAP_SETUID", "CAP_SETGID", "CAP_MKNOD"]


def test_default_profile_compiles_and_is_cached() -> None:
    key = seccomp.cache_key(seccomp.RUNTIME_DEFAULT, CAPS)
    program = base64.b64decode(seccomp.compile_profile(key))
    assert len(program) % 8 == 0 and len(program) > 100 * 8
    assert seccomp.cached(key) is not None
    assert seccomp.cached(seccomp.cache_key(seccomp.RUNTIME_DEFAULT, [*CAPS, "CAP_SYS_ADMIN"])) is None


def test_sys_admin_changes_the_program() -> None:
    plain = seccomp.compile_profile(seccomp.cache_key(seccomp.RUNTIME_DEFAULT, CAPS))
    admin = seccomp.compile_profile(seccomp.cache_key(seccomp.RUNTIME_DEFAULT, [*CAPS, "CAP_SYS_ADMIN"]))
    assert plain != admin


@pytest.mark.parametrize("profile, message", [
    ({"defaultAction": "SCMP_ACT_NOPE"}, "defaultAction: unknown action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]},
     r"syscalls\[0\]: names"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                                       "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     r"syscalls\[0\].args\[0\]: index"),
])
def test_bad_profiles_name_the_field(profile, message) -> None:
    with pytest.raises(seccomp.ProfileError, match=message):
        seccomp.compile_profile(seccomp.cache_key(profile, CAPS))


def test_unknown_syscall_names_are_skipped() -> None:
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "no_such_call"],
                                                                 "action": "SCMP_ACT_ALLOW"}]}
    assert seccomp.compile_profile(seccomp.cache_key(profile, CAPS))


def test_localhost_profile_stays_in_its_directory(tmp_path) -> None:
    (tmp_path / "ok.json").write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    assert seccomp.load_localhost(tmp_path, "ok.json") == {"defaultAction": "SCMP_ACT_ALLOW"}
    with pytest.raises(seccomp.ProfileError, match="without '..'"):
        seccomp.load_localhost(tmp_path, "../etc/passwd")
    with pytest.raises(seccomp.ProfileError, match="cannot read"):
        seccomp.load_localhost(tmp_path, "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(seccomp.ProfileError, match="not JSON"):
        seccomp.load_localhost(tmp_path, "bad.json")
