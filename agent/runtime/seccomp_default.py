"""RuntimeDefault: the seccomp profile every container gets unless it asks otherwise.

Equivalent to Docker's default profile (moby profiles/seccomp/default.json, which
containerd's CRI uses for Kubernetes' RuntimeDefault): an allow-list, everything
else fails with EPERM. What it keeps from a container's root, whatever its
capabilities say, unless the container holds the capability named:

- namespaces and mounts: unshare, setns, mount/umount, the new mount API,
  clone with any CLONE_NEW* flag, clone3 (ENOSYS, so libcs fall back to clone)
  - CAP_SYS_ADMIN. So `unshare -Ur` (a user namespace in which the process would
  be root with every capability) fails.
- kernel surface: bpf, perf_event_open, fanotify_init, keyctl/add_key/request_key
  (never allowed), userfaultfd (never), kexec, modules (CAP_SYS_MODULE), reboot
  (CAP_SYS_BOOT), swapon/off, acct, syslog, iopl/ioperm, clock setting,
  ptrace of other processes on old kernels, personality other than the common ones,
  socket(AF_VSOCK).

The profile is written in the Docker/OCI JSON schema (the form `Localhost`
profiles take too), so one compiler (seccomp.py) handles both.
"""

from __future__ import annotations

from typing import Any

# Allowed for everyone (the bulk of the allow-list), grouped by area for reading.
_ALWAYS = """
accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom recvmmsg
recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown socketcall socketpair

access chdir chmod chown chown32 close close_range copy_file_range creat dup dup2 dup3
faccessat faccessat2 fadvise64 fadvise64_64 fallocate fchdir fchmod fchmodat fchown fchown32
fchownat fcntl fcntl64 fdatasync flock fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
ftruncate64 futimesat getcwd getdents getdents64 lchown lchown32 link linkat _llseek lseek lstat
lstat64 mkdir mkdirat mknod mknodat name_to_handle_at newfstatat open openat openat2 pread64
preadv preadv2 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv rename renameat
renameat2 rmdir sendfile sendfile64 splice stat stat64 statfs statfs64 statx symlink symlinkat
sync sync_file_range syncfs tee truncate truncate64 umask unlink unlinkat utime utimensat
utimensat_time64 utimes vmsplice write writev

fgetxattr flistxattr fremovexattr fsetxattr getxattr lgetxattr listxattr llistxattr lremovexattr
lsetxattr removexattr setxattr

epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 fanotify_mark inotify_add_watch inotify_init inotify_init1
inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents io_pgetevents_time64 io_setup
io_submit io_uring_enter io_uring_register io_uring_setup ioctl pause pipe pipe2 poll ppoll
ppoll_time64 pselect6 pselect6_time64 select _newselect signalfd signalfd4 timerfd_create
timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64

brk madvise membarrier memfd_create memfd_secret mincore mlock mlock2 mlockall mmap mmap2
mprotect mremap msync munlock munlockall munmap pkey_alloc pkey_free pkey_mprotect
remap_file_pages

execve execveat exit exit_group fork vfork wait4 waitid waitpid kill tgkill tkill pidfd_open
pidfd_send_signal process_mrelease restart_syscall rseq set_robust_list get_robust_list
set_tid_address set_thread_area get_thread_area getcpu futex futex_time64 futex_waitv

rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sigaltstack sigprocmask sigreturn

alarm clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
clock_gettime64 clock_nanosleep clock_nanosleep_time64 getitimer gettimeofday nanosleep
setitimer time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
timer_settime timer_settime64 times adjtimex

capget capset getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getpgid
getpgrp getpid getppid getpriority getresgid getresgid32 getresuid getresuid32 getrlimit
getrusage getsid gettid getuid getuid32 ioprio_get ioprio_set prctl prlimit64 setfsgid
setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setpgid setpriority
setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
setsid setuid setuid32 ugetrlimit uname sysinfo getrandom seccomp
landlock_add_rule landlock_create_ruleset landlock_restrict_self

sched_getaffinity sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min
sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity
sched_setattr sched_setparam sched_setscheduler sched_yield

ipc mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink msgctl msgget msgrcv msgsnd semctl semget semop semtimedop
semtimedop_time64 shmat shmctl shmdt shmget
""".split()

# Allowed only to a container holding the capability.
_BY_CAPABILITY: dict[str, list[str]] = {
    "CAP_SYS_ADMIN": "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount "
                     "mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname "
                     "sethostname setns syslog umount umount2 unshare".split(),
    "CAP_DAC_READ_SEARCH": ["open_by_handle_at"],
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_CHROOT": ["chroot"],
    "CAP_SYS_MODULE": ["delete_module", "init_module", "finit_module"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_PTRACE": ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
                       "ptrace"],
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_SYS_TIME": ["settimeofday", "stime", "clock_settime", "clock_settime64"],
    "CAP_SYS_TTY_CONFIG": ["vhangup"],
    "CAP_SYS_NICE": ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
    "CAP_SYSLOG": ["syslog"],
    "CAP_BPF": ["bpf"],
    "CAP_PERFMON": ["perf_event_open"],
}

# Allowed only on some architectures (names as in the profile's "arches").
_BY_ARCH: list[tuple[list[str], list[str]]] = [
    (["arch_prctl"], ["amd64", "x32"]),
    (["modify_ldt"], ["amd64", "x32", "x86"]),
    (["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"],
     ["arm", "arm64"]),
    (["sync_file_range2", "swapcontext"], ["ppc64le"]),
    (["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"], ["s390", "s390x"]),
    (["riscv_flush_icache"], ["riscv64"]),
]

# clone without any namespace flag: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
CLONE_NAMESPACE_FLAGS = 0x7E020000
# personality values glibc and common tools use (PER_LINUX, UNAME26, ADDR_NO_RANDOMIZE and
# their combination, and 0xffffffff which only queries)
_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
AF_VSOCK = 40


def _rule(names: list[str], action: str = "SCMP_ACT_ALLOW", **extra: Any) -> dict[str, Any]:
    return {"names": names, "action": action, **extra}


def profile() -> dict[str, Any]:
    """The RuntimeDefault profile as a Docker/OCI seccomp JSON document (a fresh dict)."""
    syscalls = [_rule(_ALWAYS),
                _rule(["process_vm_readv", "process_vm_writev", "ptrace"], includes={"minKernel": "4.8"}),
                _rule(["socket"], args=[{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}])]
    syscalls += [_rule(["personality"], args=[{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}])
                 for v in _PERSONALITIES]
    syscalls += [_rule(names, includes={"arches": arches}) for names, arches in _BY_ARCH]
    syscalls += [_rule(names, includes={"caps": [cap]}) for cap, names in _BY_CAPABILITY.items()]
    syscalls += [
        _rule(["clone"], args=[{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                                "op": "SCMP_CMP_MASKED_EQ"}],
              excludes={"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}),
        _rule(["clone"], args=[{"index": 1, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                                "op": "SCMP_CMP_MASKED_EQ"}],
              includes={"arches": ["s390", "s390x"]}, excludes={"caps": ["CAP_SYS_ADMIN"]}),
        # ENOSYS, not EPERM: glibc then falls back to clone, which the rule above checks
        _rule(["clone3"], "SCMP_ACT_ERRNO", errnoRet=38, excludes={"caps": ["CAP_SYS_ADMIN"]}),
    ]
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
            {"architecture": "SCMP_ARCH_S390X", "subArchitectures": ["SCMP_ARCH_S390"]},
            {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": []},
        ],
        "syscalls": syscalls,
    }
