"""Working in network namespaces from threads, without forking.

Two ways to do netlink work in a namespace other than the process's:
fork a child that enters it (pyroute2's NetNS class, `ip netns exec`), or move one
*thread* into it with setns(2). The agent runs gRPC threads, and forking a process
with threads is unsafe (a child may inherit a lock some other thread held), so this
library only ever does the second:

- `in_netns(path)` moves the calling thread into the namespace at `path` (a bind
  mount such as a pod sandbox's `net` file, or /run/netns/NAME) for the body of a
  `with` block and moves it back afterwards. setns(CLONE_NEWNET) affects only the
  calling thread. Sockets opened inside stay in that namespace for their whole life,
  wherever they are used later.
- `NetnsWorker` is the one thread on which a NodeNetwork does its blocking netlink
  work, off the event loop. The thread is started from the event loop's thread and
  so lives in that thread's namespace - the node's. One thread (rather than any
  thread of asyncio's default pool) because pyroute2's synchronous IPRoute belongs
  to the thread that made it, because one thread serialises the node's netlink
  changes, and because a thread that could not get back from a pod's namespace
  must never be handed other work: the worker then refuses everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from .errors import NetworkError

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


class NetnsStuck(NetworkError):
    """A thread entered a pod's namespace and could not return to its own."""


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open at `fd`."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


@contextlib.contextmanager
def in_netns(path: Path | str) -> Iterator[None]:
    """Run the body with the calling thread in the network namespace at `path`."""
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetworkError(f"cannot open network namespace {path}: {exc.strerror}") from None
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            setns(target)
        except OSError as exc:
            raise NetworkError(f"cannot enter network namespace {path}: {exc.strerror} "
                               f"(is it a network namespace?)") from None
        try:
            yield
        finally:
            try:
                setns(own)
            except OSError as exc:      # practically impossible: `own` is held open
                raise NetnsStuck(f"thread could not leave network namespace {path}: {exc.strerror}") from exc
    finally:
        os.close(target)
        os.close(own)


class NetnsWorker:
    """A single worker thread, in the namespace of the thread that first uses it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._stuck: NetnsStuck | None = None

    async def run(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """`fn(*args, **kwargs)` on the worker thread; its result or exception."""
        if self._stuck is not None:
            raise NetworkError(f"network worker unusable since: {self._stuck}; restart the agent")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        except NetnsStuck as exc:
            self._stuck = exc
            raise

    async def close(self, cleanup: Callable[[], None] | None = None) -> None:
        """Run `cleanup` on the thread (to close what belongs to it), then stop the thread."""
        if self._executor is None:
            return
        executor, self._executor = self._executor, None
        try:
            if cleanup is not None and self._stuck is None:
                await asyncio.get_running_loop().run_in_executor(executor, cleanup)
        finally:
            await asyncio.to_thread(executor.shutdown, wait=True)
