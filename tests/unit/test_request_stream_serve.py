"""The server's end of the Requests stream (controlplane/apiserver/requeststream.py), with a
stand-in servicer: answers matched by id, a bounded number in flight, errors as codes, and
a shutdown that stops reading but answers what was read."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from controlplane.apiserver import requeststream
from controlplane.storage import NotFound
from protos import skiff_pb2 as pb

pytestmark = pytest.mark.asyncio


class Service:
    """Answers Get with the name it was asked for, after `gate` opens; NotFound for "absent"."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.running = 0
        self.most_running = 0

    async def Get(self, request: pb.GetRequest, context: object) -> pb.ObjectResponse:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
            if request.name == "absent":
                raise NotFound(f'configmaps "{request.name}" not found')
            return pb.ObjectResponse(object=request.name.encode())
        finally:
            self.running -= 1


def get(i: int, name: str) -> pb.StreamRequest:
    return pb.StreamRequest(id=i, get=pb.GetRequest(kind="configmaps", name=name))


async def feed(messages: list[pb.StreamRequest], hold: asyncio.Event | None = None, per_batch: int = 1):
    for i in range(0, len(messages), per_batch):
        yield pb.RequestBatch(requests=messages[i:i + per_batch])
    if hold is not None:
        await hold.wait()   # the client keeps its stream open


async def test_answers_carry_their_request_ids_and_errors_are_codes():
    service = Service()
    service.gate.set()
    stream = requeststream.serve(service, feed([get(1, "a"), get(2, "absent"), get(3, "c"), pb.StreamRequest(id=4)],
                                               per_batch=3))
    answers = [a for batch in [b async for b in stream] for a in batch.responses]
    by_id = {a.id: a for a in answers}
    assert by_id[1].object.object == b"a" and by_id[3].object.object == b"c" and by_id[1].code == 0
    assert by_id[2].code == grpc.StatusCode.NOT_FOUND.value[0] and by_id[2].message == 'configmaps "absent" not found'
    assert by_id[4].code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "one of apply, create" in by_id[4].message


async def test_no_more_than_max_in_flight_run_at_once(monkeypatch):
    monkeypatch.setattr(requeststream, "MAX_IN_FLIGHT", 3)
    service = Service()
    stream = requeststream.serve(service, feed([get(i, f"n{i}") for i in range(10)]))
    first = asyncio.ensure_future(stream.__anext__())
    deadline = asyncio.get_running_loop().time() + 5
    while service.running < 3:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)   # give a fourth the chance it must not get
    assert service.running == 3
    service.gate.set()
    batches = [await first] + [b async for b in stream]
    answers = [a for b in batches for a in b.responses]
    assert sorted(a.id for a in answers) == list(range(10)) and service.most_running == 3
    assert len(batches) < 10, "answers ready together went together"


async def test_stopping_reads_no_more_but_answers_what_was_read():
    service, stopping, hold = Service(), asyncio.Event(), asyncio.Event()
    stream = requeststream.serve(service, feed([get(1, "a"), get(2, "b")], hold), stopping)
    first = asyncio.ensure_future(stream.__anext__())
    while service.running < 2:
        await asyncio.sleep(0.01)
    stopping.set()
    service.gate.set()
    batches = [await first] + [b async for b in asyncio_timeout_iter(stream, 5)]
    answers = [a for b in batches for a in b.responses]
    assert sorted(a.id for a in answers) == [1, 2]   # and the stream ended though the client kept it open


async def asyncio_timeout_iter(stream, seconds: float):
    while True:
        try:
            yield await asyncio.wait_for(stream.__anext__(), seconds)
        except StopAsyncIteration:
            return
