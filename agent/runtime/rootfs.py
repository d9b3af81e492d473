"""The container's filesystem view: overlay root, kernel filesystems, /dev, binds, pivot_root.

Runs in the container process between fork and exec (container_init.py calls
`build()`), after it has a mount namespace of its own and before it gives up
privileges. In order:

1. make every mount private, so nothing mounted here propagates to the host
   and nothing the host mounts later shows up here;
2. overlayfs at <container>/rootfs: the image layers read-only below, the
   container's own upper/work directories above (deleted with the container, so a
   restarted container starts from the image again);
3. /proc for the container's PID namespace, with the kernel knobs that would reach
   the host masked or read-only (a short version of runc's default lists);
4. /sys read-only (mounted after joining the pod's network namespace, so
   /sys/class/net shows the pod's interfaces);
5. a minimal /dev on tmpfs: host null/zero/full/random/urandom/tty bind-mounted in,
   a private devpts, shm, mqueue;
6. /etc/hosts, /etc/hostname, /etc/resolv.conf from the pod's sandbox directory, then
   the volumes - all still reachable by their host paths;
7. pivot_root into the new root and detach the old one: from here on the host's
   files are gone;
8. remount / read-only when readOnlyRootFilesystem asks for it (last, because the
   steps above create mount points in it).

Mount points inside the image are resolved with `resolve_in_root()`, which follows
symlinks as if the rootfs were "/", so an image with `/etc -> /host-etc` cannot make a
bind mount land outside its root.
"""

from __future__ import annotations

import errno
import os
import stat

from agent.runtime import linux
from agent.runtime.linux import (MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE,
                                 MS_RDONLY, MS_REC, MS_REMOUNT, MS_STRICTATIME)

# /proc entries that would leak host information or control the host.
MASKED_PATHS = ("/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("core", "/proc/kcore"), ("ptmx", "pts/ptmx"))


def resolve_in_root(root: str, path: str) -> str:
    """The host path of `path` inside `root`, following symlinks with `root` as "/"."""
    pending = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = os.path.join(root, *done, part)
        try:
            target = os.readlink(candidate)
        except OSError:                  # not a symlink, or not there yet
            done.append(part)
            continue
        links += 1
        if links > 40:
            raise OSError(errno.ELOOP, f"resolving {path} in the container: too many symlinks")
        if target.startswith("/"):
            done = []
        pending = [p for p in target.split("/") if p not in ("", ".")] + pending
    return os.path.join(root, *done)


def _mount_point(root: str, path: str, *, directory: bool) -> str:
    """Resolve `path` in the rootfs and create it as an empty directory or file."""
    target = resolve_in_root(root, path)
    if directory:
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    return target


def _bind(source: str, target: str, *, readonly: bool = False, recursive: bool = True) -> None:
    linux.mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly:
        # a remount changes only the top mount; submounts of a recursive bind stay as they are
        linux.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def _mask_and_protect(root: str) -> None:
    for path in MASKED_PATHS:
        target = os.path.join(root, path.lstrip("/"))
        try:
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(mode):
            linux.mount("tmpfs", target, "tmpfs", MS_RDONLY, "size=0")
        else:
            linux.mount("/dev/null", target, None, MS_BIND)
    for path in READONLY_PATHS:
        target = os.path.join(root, path.lstrip("/"))
        if os.path.exists(target):
            _bind(target, target, readonly=True)


def _mount_dev(root: str) -> None:
    dev = _mount_point(root, "/dev", directory=True)
    linux.mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")
    for name in DEVICES:
        target = os.path.join(dev, name)
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666))
        linux.mount("/dev/" + name, target, None, MS_BIND)
    for name, fstype, flags, data in (
        ("pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"),
        ("shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k"),
        ("mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
    ):
        target = os.path.join(dev, name)
        os.mkdir(target, 0o755)
        linux.mount(fstype, target, fstype, flags, data)
    for name, link in DEV_LINKS:
        os.symlink(link, os.path.join(dev, name))


def build(plan: dict) -> None:
    """Steps 1-8 above. `plan` is the LaunchPlan dict (plan.py)."""
    root = plan["rootfs"]
    privileged = plan["privileged"]

    # 1. private propagation for the whole tree
    linux.mount(None, "/", None, MS_REC | MS_PRIVATE)

    # 2. overlay root; lowerdir paths are relative to overlay_cwd to fit the one-page option limit
    os.chdir(plan["overlay_cwd"])
    linux.mount("overlay", root, "overlay", 0, plan["overlay_options"])

    # 3. /proc
    proc = _mount_point(root, "/proc", directory=True)
    linux.mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)

    # 4. /sys
    sys_dir = _mount_point(root, "/sys", directory=True)
    linux.mount("sysfs", sys_dir, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | (0 if privileged else MS_RDONLY))
    if not privileged:
        _mask_and_protect(root)

    # 5. /dev
    _mount_dev(root)

    # 6. pod files, then volumes
    for container_path, host_path in plan["etc_files"].items():
        _bind(host_path, _mount_point(root, container_path, directory=False), recursive=False)
    for m in plan["mounts"]:
        is_dir = os.path.isdir(m["source"])
        target = _mount_point(root, m["destination"], directory=is_dir)
        _bind(m["source"], target, readonly=m["readonly"])
        linux.mount(None, target, None, MS_REC | MS_PRIVATE)
    cwd = _mount_point(root, plan["cwd"], directory=True)   # runc creates a missing workingDir too
    del cwd

    # 7. pivot_root(".", ".") stacks the old root on top of the new one at "/";
    #    detaching "." then removes it (see pivot_root(2), NOTES)
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount2(".", MNT_DETACH)
    os.chdir("/")

    # 8. read-only root
    if plan["readonly_rootfs"]:
        linux.mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY)
