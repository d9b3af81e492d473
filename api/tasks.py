"""Running a group of asyncio tasks as one: `run_together` waits for all of them and, when
it ends for any reason (one failed, the caller was cancelled), cancels the rest and waits
until they have finished; `cancel_and_wait` is that last step alone.

Shared by the agent's and hollow nodes' loops, the node DNS and the controller manager, so
no task outlives the component that started it. Pure stdlib, in api/ because every
component may import api/. (asyncio.TaskGroup does the same but raises an ExceptionGroup;
callers here expect the failing task's own exception.)
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel every task and wait until each has finished (its result or error is dropped)."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def run_together(tasks: list[asyncio.Future[Any]]) -> None:
    """Wait for every task; the first error is raised, and whatever is still running is cancelled."""
    try:
        await asyncio.gather(*tasks)
    finally:
        await cancel_and_wait(tasks)
