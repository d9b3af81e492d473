"""Fixtures for the container runtime's node tests (tests/node/test_runtime*.py).

- `busybox_rootfs`: a root filesystem of Debian's busybox-static - /bin/busybox plus
  one relative symlink per applet - used as the single image layer.
- `runtime_cgroups`: a cgroup manager under a test-unique parent ("skiff-test-<rand>"),
  removed in `finally`; the machine's own driver, v1 or v2 (tests/vm/ runs these tests
  inside a guest on pure cgroup v2).
- `runtime`: a started `Runtime` in a temp root. Its teardown stops and removes
  every container, removes every sandbox, stops the fork server, and then checks
  that nothing is left: no process whose command line names the root (fork server,
  spare worker, supervisors), no process in the test's cgroups, no mount under the root.
- `pods`: helpers to make sandboxes, run containers to completion and read their logs.
- `wait_until`, `runtime_cleanup`: the polling and cleanup functions below, as
  fixtures (test modules cannot import this conftest by name: tests/conftest.py
  is also called "conftest").

Every check waits on a condition with a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Callable

import pytest

from agent.cgroups import open_manager
from procs import processes_mentioning

if TYPE_CHECKING:
    from agent.runtime import ContainerStatus, Runtime

BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def runtime_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: the runtime creates namespaces, cgroups and mounts"
    if not os.path.exists(BUSYBOX):
        return "needs busybox-static (apt-get install busybox-static) for the test rootfs"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "kernel without overlayfs"
    return None


def eventually(condition: Callable[[], object], *, timeout: float = 10.0, what: str = "condition") -> object:
    """Poll `condition` until truthy; fail after the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


async def eventually_async(condition: Callable[[], object], *, timeout: float = 10.0,
                           what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = runtime_skip_reason()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    for d in ("etc", "tmp", "proc", "sys", "dev"):
        (root / d).mkdir()
    (root / "tmp").chmod(0o1777)
    return root


@pytest.fixture
def runtime_cgroups():
    reason = runtime_skip_reason()
    if reason:
        pytest.skip(reason)
    manager = open_manager(parent=f"skiff-test-{secrets.token_hex(4)}")
    try:
        yield manager
    finally:
        manager.remove("")
        assert not manager.exists(""), "test cgroups left behind"


@pytest.fixture
async def runtime(tmp_path: Path, runtime_cgroups) -> AsyncIterator["Runtime"]:
    from agent.runtime import Runtime

    root = tmp_path / "rt"
    rt = Runtime(root, cgroups=runtime_cgroups)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.close()
        await cleanup_runtime(root, runtime_cgroups)


async def cleanup_runtime(root: Path, cgroups) -> None:
    """Stop and remove everything a runtime at `root` made, then check nothing is left.

    Uses a fresh Runtime object (the test's own may have played an agent that was
    killed) without starting it: stopping and removing need no fork server.
    """
    from agent.runtime import Runtime

    rt = Runtime(root, cgroups=cgroups)
    errors: list[BaseException] = []
    for status in await rt.list():
        try:
            await rt.stop_container(status.id, grace_seconds=0)
            await rt.remove_container(status.id, remove_log=True)
        except Exception as exc:  # noqa: BLE001 - clean up the rest, then report
            errors.append(exc)
    for pod_uid in sorted(os.listdir(rt.sandboxes_dir)):      # half-made ones too
        try:
            await rt.remove_sandbox(pod_uid)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    if errors:
        raise errors[0]
    await eventually_async(lambda: not processes_mentioning(str(root)), timeout=10,
                           what=f"fork server, spare and supervisors of {root} to exit")
    assert cgroups.procs("", recursive=True) == [], "container processes left in the test cgroups"
    assert mounts_under(root) == [], f"mounts left under {root}"
    assert list((root / "containers").iterdir()) == []
    assert list((root / "sandboxes").iterdir()) == []


def parse_cri_log(text: str) -> list[tuple[str, str, str, str]]:
    """(timestamp, stream, tag, content) per line of a CRI log."""
    records = []
    for line in text.splitlines():
        timestamp, stream, tag, content = line.split(" ", 3) if line.count(" ") >= 3 else (*line.split(" "), "")
        records.append((timestamp, stream, tag, content))
    return records


@dataclass
class Ran:
    status: "ContainerStatus"
    stdout: str
    stderr: str


class Pods:
    """Small helpers over a Runtime for the tests."""

    def __init__(self, runtime, rootfs: Path) -> None:
        self.runtime = runtime
        self.rootfs = rootfs
        self._n = 0

    async def sandbox(self, hostname: str = "web-0", **kwargs):
        from agent.runtime import SandboxSpec
        uid = f"pod-{secrets.token_hex(3)}"
        return await self.runtime.create_sandbox(SandboxSpec(pod_uid=uid, hostname=hostname, **kwargs))

    def spec(self, sandbox, args: list[str], **kwargs):
        from agent.runtime import ContainerSpec
        self._n += 1
        kwargs.setdefault("name", f"c{self._n}")
        return ContainerSpec(id=f"{sandbox.pod_uid}-{kwargs['name']}-{secrets.token_hex(2)}",
                             pod_uid=sandbox.pod_uid, layers=[self.rootfs], args=args, **kwargs)

    async def run(self, sandbox, args: list[str], *, timeout: float = 20, remove: bool = True, **kwargs) -> Ran:
        """Run a container to completion; its status and output."""
        spec = self.spec(sandbox, args, **kwargs)
        await self.runtime.run_container(spec)
        status = await self.runtime.wait(spec.id, timeout=timeout)
        stdout, stderr = self.output(status.log_path)
        if remove:
            await self.runtime.remove_container(spec.id, remove_log=True)
        return Ran(status, stdout, stderr)

    @staticmethod
    def output(log_path: Path) -> tuple[str, str]:
        streams = {"stdout": [], "stderr": []}
        for _ts, stream, tag, content in parse_cri_log(Path(log_path).read_text()):
            streams[stream].append(content + ("\n" if tag == "F" else ""))
        return "".join(streams["stdout"]), "".join(streams["stderr"])


@pytest.fixture
def pods(runtime, busybox_rootfs: Path) -> Pods:
    return Pods(runtime, busybox_rootfs)


@pytest.fixture
def make_pods(busybox_rootfs: Path) -> Callable[[object], Pods]:
    """`make_pods(runtime)`: the `pods` helpers over a Runtime a test made itself."""
    return lambda runtime: Pods(runtime, busybox_rootfs)


@pytest.fixture
def runtime_processes():
    """`runtime_processes(root)`: live PIDs whose command line names `root` (the fork
    server, its spare worker, supervisors)."""
    return lambda root: processes_mentioning(str(root))


@pytest.fixture
def wait_until():
    """`await wait_until(condition, timeout=..., what=...)`: poll with a deadline."""
    return eventually_async


@pytest.fixture
def runtime_cleanup():
    """`await runtime_cleanup(root, cgroups)`, for tests that make their own Runtime."""
    return cleanup_runtime
