"""Exponential backoff: the one delay sequence every retry and poll loop uses.

`Backoff(initial, maximum)` hands out `initial`, then twice the last, up to `maximum`;
`reset()` starts again after progress (a watch that delivered an event, a process that
ran long enough). It is pure (no sleeping, no clock), so a loop sleeps the way it must —
`asyncio.sleep` on the event loop, an injected clock in the cgroup drivers.

Why not `tenacity` or `backoff` from PyPI: both wrap a *function* to retry, while Skiff's
loops retry *part* of a long-running loop (list once, then watch; reset when events flow),
log their own message per failure and sleep on their own clock. A ten-line sequence fits
those loops; a decorator would have them restructured around it. It lives in api/ (pure,
importable by every component) because storage, client, agent and controllers all use it.
"""

from __future__ import annotations


class Backoff:
    """initial, initial*factor, ... capped at maximum; reset() starts over."""

    def __init__(self, initial: float = 0.1, maximum: float = 5.0, factor: float = 2.0):
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self._next = initial

    def next(self) -> float:
        """The delay to wait now (and double the one after)."""
        delay = self._next
        self._next = min(self._next * self.factor, self.maximum)
        return delay

    def peek(self) -> float:
        """The delay next() will return, without advancing."""
        return self._next

    def reset(self) -> None:
        self._next = self.initial
