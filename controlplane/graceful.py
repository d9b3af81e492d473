"""Run a process's main task until SIGINT or SIGTERM: the first signal cancels the task (it
finishes what it must: binds in flight, a reconcile), a second one exits at once.

Used by the standalone scheduler and controller manager (`python -m controlplane.scheduler`,
`python -m controlplane.controllers`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any, Coroutine


async def run_until_signalled(work: Coroutine[Any, Any, Any], *, name: str, log: logging.Logger) -> None:
    task = asyncio.create_task(work, name=name)
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("stopping (signal again to exit at once)")
            task.cancel()
        else:
            os._exit(1)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
