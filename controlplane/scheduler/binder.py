"""Binds sent in batches: the scheduler's decisions go to the API server as BindMany requests.

Every request costs the API server and the scheduler a fixed amount of gRPC work,
about as much as the bind itself. So the binder keeps at most `max_in_flight`
requests open; binds decided while they are in flight wait and leave together in
the next request, as soon as one returns. There is no timer: a lone bind leaves at
once, and batches form only when binds come faster than the API server answers —
exactly when saving requests matters. Each bind still gets its own result (its own
compare-and-swap on the server), so a failed bind fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from controlplane.client import ApiError, Client

log = logging.getLogger(__name__)


class BatchBinder:
    def __init__(self, client: Client, *, max_in_flight: int = 2, max_batch: int = 500):
        self.client = client
        self.max_in_flight = max_in_flight
        self.max_batch = max_batch
        self._pending: list[tuple[dict[str, str], asyncio.Future]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task] = set()
        self.requests = 0   # BindMany requests sent (the stats show the batching)

    async def bind(self, namespace: str, name: str, node_name: str, *, uid: str = "", scheduled_event: str = "",
                   event_source: str = "") -> dict[str, Any]:
        """Bind as Client.bind does (the same result, the same errors), in the next batch."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append(({"namespace": namespace, "name": name, "node_name": node_name, "uid": uid,
                               "scheduled_event": scheduled_event, "event_source": event_source}, future))
        self._send_next()
        return await future

    def _send_next(self) -> None:
        while self._pending and self._in_flight < self.max_in_flight:
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            self._in_flight += 1
            self.requests += 1
            task = asyncio.get_running_loop().create_task(self._send(batch), name="bind-batch")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[dict[str, str], asyncio.Future]]) -> None:
        try:
            results: list[Any] = await self.client.bind_many([b for b, _ in batch])
        except ApiError as exc:   # the request itself failed (API server unreachable): every bind did
            results = [exc] * len(batch)
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.cancel() if isinstance(exc, asyncio.CancelledError) else future.set_exception(exc)
            raise
        finally:
            self._in_flight -= 1
        for (_, future), result in zip(batch, results):
            if future.done():      # its waiter was cancelled
                continue
            if isinstance(result, ApiError):
                future.set_exception(result)
            else:
                future.set_result(result)
        self._send_next()
