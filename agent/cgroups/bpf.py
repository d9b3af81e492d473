"""Loading a cgroup device program and attaching it to a group, through bpf(2) and ctypes.

Python has no bpf() wrapper and glibc none either, so this calls syscall(2) by
number with the two `union bpf_attr` layouts it needs (<linux/bpf.h>):

    BPF_PROG_LOAD (5):   u32 prog_type, u32 insn_cnt, u64 insns, u64 license,
                         u32 log_level, u32 log_size, u64 log_buf, ...
    BPF_PROG_ATTACH (8): u32 target_fd, u32 attach_bpf_fd, u32 attach_type, u32 attach_flags

`attach_device_program(group_dir, insns)` loads the program
(BPF_PROG_TYPE_CGROUP_DEVICE), opens the cgroup directory, attaches the program
with BPF_CGROUP_DEVICE and BPF_F_ALLOW_MULTI (so it stacks with any program the
parent has, as runc does: the access must pass all of them), and closes both
fds. The attachment keeps the program alive; removing the group (rmdir) detaches
and frees it, so there is nothing to clean up.

Needs CAP_SYS_ADMIN (or CAP_BPF with CAP_NET_ADMIN/CAP_PERFMON): the agent and its
supervisors run as root. Errors become CgroupError with the kernel's reason; a
refused program is loaded once more with the verifier log to say why.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
from pathlib import Path

from agent.cgroups.errors import CgroupError

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
LICENSE = b"Apache-2.0\0"
LOG_SIZE = 65536

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    number = _SYS_BPF.get(platform.machine())
    if number is None:
        raise CgroupError(f"bpf: unsupported architecture {platform.machine()}")
    result = _syscall(ctypes.c_long(number), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def load_device_program(insns: bytes) -> int:
    """The fd of the loaded program; raises CgroupError with the verifier's log if refused."""
    code = ctypes.create_string_buffer(insns, len(insns))
    license_ = ctypes.create_string_buffer(LICENSE, len(LICENSE))

    def attempt(log: ctypes.Array | None) -> int:
        attr = ctypes.create_string_buffer(128)        # zeroed: fields we do not set are 0
        struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8,
                         ctypes.addressof(code), ctypes.addressof(license_),
                         1 if log is not None else 0, len(log) if log is not None else 0,
                         ctypes.addressof(log) if log is not None else 0)
        return _bpf(BPF_PROG_LOAD, attr)

    try:
        return attempt(None)
    except OSError as err:
        log = ctypes.create_string_buffer(LOG_SIZE)
        try:
            attempt(log)
        except OSError:
            pass
        detail = log.value.decode(errors="replace").strip()
        raise CgroupError(f"loading the device program (bpf BPF_PROG_LOAD): {err.strerror}"
                          + (f"; verifier: {detail[-500:]}" if detail else "")) from err


def attach_device_program(group: Path, insns: bytes) -> None:
    """Load `insns` and attach it to the cgroup v2 directory `group`."""
    prog_fd = load_device_program(insns)
    try:
        try:
            group_fd = os.open(group, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise CgroupError(f"opening cgroup {group}: {err.strerror}") from err
        try:
            attr = ctypes.create_string_buffer(struct.pack("<IIII", group_fd, prog_fd, BPF_CGROUP_DEVICE,
                                                           BPF_F_ALLOW_MULTI), 16)
            _bpf(BPF_PROG_ATTACH, attr)
        except OSError as err:
            raise CgroupError(f"attaching the device program to {group} (bpf BPF_PROG_ATTACH): "
                              f"{err.strerror}") from err
        finally:
            os.close(group_fd)
    finally:
        os.close(prog_fd)
