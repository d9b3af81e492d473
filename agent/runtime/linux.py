"""The Linux system calls the runtime needs and Python 3.11 does not wrap.

`os` has fork, execve, setuid, pidfd_open and friends, but no unshare, setns,
mount, umount2, pivot_root, prctl, capset, sethostname or seccomp filters. This module binds them
once with ctypes, at import time, so the code that runs between fork and exec
(container_init.py, rootfs.py, sandbox_ns.py) only calls functions that are
already resolved: nothing is imported or looked up after fork.

Every wrapper raises OSError with the errno and a message naming the operation
and its target (`mount overlay on /x/rootfs: Invalid argument`), which is the
text a failed container start reports back to the agent.

It also holds the small /proc readers the state machine uses to tell whether a
recorded PID is still the process we started (its start time, field 22 of
/proc/<pid>/stat).
"""

from __future__ import annotations

import ctypes
import os
import platform

# --- namespaces (clone flags, <linux/sched.h>) --------------------------------
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {"mnt": CLONE_NEWNS, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC,
                   "pid": CLONE_NEWPID, "net": CLONE_NEWNET}

# --- mount flags (<sys/mount.h>) ------------------------------------------------
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# --- prctl options (<linux/prctl.h>) --------------------------------------------
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

# --- terminal ioctls --------------------------------------------------------------
TIOCSCTTY = 0x540E

# pivot_root has no glibc wrapper; it is called through syscall(2) by number.
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

_libc = ctypes.CDLL(None, use_errno=True)

_unshare = _libc.unshare
_unshare.argtypes = [ctypes.c_int]
_setns = _libc.setns
_setns.argtypes = [ctypes.c_int, ctypes.c_int]
_mount = _libc.mount
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_umount2 = _libc.umount2
_umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_sethostname = _libc.sethostname
_sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_capset = _libc.capset
_capset.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
_syscall = _libc.syscall


def _fail(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (CLONE_NEW* flags)."""
    if _unshare(flags) != 0:
        raise _fail(f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0, *, what: str = "namespace") -> None:
    """Join the namespace that `fd` (an open /proc/<pid>/ns/* or bind-mounted file) refers to."""
    if _setns(fd, nstype) != 0:
        raise _fail(f"setns {what}")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    if _mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        kind = fstype or ("bind" if flags & MS_BIND else "propagation" if not source else source)
        raise _fail(f"mount {kind} on {target}")


def umount2(target: str, flags: int = 0) -> None:
    if _umount2(_b(target), flags) != 0:
        raise _fail(f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    number = _SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(0, f"pivot_root: unsupported architecture {platform.machine()}")
    if _syscall(ctypes.c_long(number), ctypes.c_char_p(_b(new_root)), ctypes.c_char_p(_b(put_old))) != 0:
        raise _fail(f"pivot_root {new_root}")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0, *, what: str = "prctl") -> None:
    if _prctl(option, arg2, arg3, arg4, arg5) != 0:
        raise _fail(what)


def sethostname(name: str) -> None:
    raw = name.encode()
    if _sethostname(raw, len(raw)) != 0:
        raise _fail(f"sethostname {name!r}")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class SeccompFilter:
    """A classic-BPF seccomp program (struct sock_filter[], 8 bytes per instruction, as
    libseccomp exports it; see seccomp.py), held in memory ready for `load()`.

    Made before fork, so the container process only makes one prctl call."""

    def __init__(self, program: bytes) -> None:
        if not program or len(program) % 8 or len(program) // 8 > 0xFFFF:
            raise ValueError(f"seccomp program of {len(program)} bytes: must be 1..65535 8-byte instructions")
        self._buffer = ctypes.create_string_buffer(program, len(program))
        self._fprog = _SockFprog(len(program) // 8, ctypes.addressof(self._buffer))

    def load(self) -> None:
        """Install the filter on the calling thread (inherited by children and kept across
        execve). Needs no_new_privs or CAP_SYS_ADMIN."""
        if _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(self._fprog), 0, 0) != 0:
            raise _fail("loading the seccomp filter")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(*, effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's capability sets (64-bit masks, bit n = capability n)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _capset(ctypes.byref(header), data) != 0:
        raise _fail("capset")


def last_cap() -> int:
    """The highest capability number this kernel knows."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def own_capabilities() -> set[int]:
    """The capabilities this process holds and may pass on (permitted and bounding)."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("CapPrm:", "CapBnd:")):
                name, value = line.split()
                fields[name] = int(value, 16)
    bits = fields["CapPrm:"] & fields["CapBnd:"]
    return {n for n in range(64) if bits >> n & 1}


# --- facts about processes ---------------------------------------------------------

def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of a process, or None if gone.

    The start time (field 22 of /proc/<pid>/stat) tells a process apart from a later
    one that got the same recycled PID. The command name (field 2) may contain spaces
    and parentheses, so fields are counted after its closing parenthesis.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[19])


def start_time(pid: int) -> int | None:
    stat = proc_stat(pid)
    return None if stat is None else stat[1]


def is_alive(pid: int | None, started: int | None) -> bool:
    """Is `pid` still the process that was started at `started` (and not a zombie)?"""
    if not pid or started is None:
        return False
    stat = proc_stat(pid)
    return stat is not None and stat[1] == started and stat[0] not in ("Z", "X")


def open_pidfd(pid: int, started: int) -> int | None:
    """A pidfd for `pid` if it is still the process started at `started`, else None.

    The pidfd is opened first and the start time checked afterwards, so the fd
    cannot end up pointing at a process that reused the PID in between.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if start_time(pid) != started:
        os.close(fd)
        return None
    return fd
