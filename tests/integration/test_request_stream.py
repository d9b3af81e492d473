"""The Requests stream (object verbs as messages on one open stream) answers exactly as
the verbs' own calls do, matches answers to requests, and survives the server restarting."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from controlplane.client import AlreadyExists, ApiError, Client, Conflict, Invalid, NotFound, Unavailable
from procs import ControlPlane
from protos import skiff_pb2 as pb
from protos import skiff_pb2_grpc as pb_grpc

pytestmark = pytest.mark.asyncio


def configmap(name: str, ns: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": data or {"k": "v"}}


def pod(name: str, ns: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def node(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}


async def outcome(coro) -> tuple[str, str]:
    """What a caller sees: the error class and message, or OK."""
    try:
        await coro
        return ("OK", "")
    except ApiError as exc:
        return (type(exc).__name__, exc.message)


async def test_every_verb_answers_as_its_own_call_does(api_server, namespace):
    async with Client(api_server.address, credentials=api_server.credentials, timeout=10) as streamed, \
            Client(api_server.address, credentials=api_server.credentials, timeout=10, request_stream=False) as unary:
        node_x, node_y = f"node-x-{namespace}", f"node-y-{namespace}"
        await streamed.create(node(node_x))
        await streamed.create(node(node_y))
        for c, tag in ((streamed, "s"), (unary, "u")):
            created = await c.create(configmap(f"cm-{tag}", namespace))
            assert created["metadata"]["resourceVersion"]
            got = await c.get("configmaps", f"cm-{tag}", namespace)
            assert got == created
            got["data"] = {"k": "changed"}
            assert (await c.update(got))["data"] == {"k": "changed"}
            applied, result = await c.apply(configmap(f"cm-{tag}-applied", namespace))
            assert result == "created" and applied["metadata"]["name"] == f"cm-{tag}-applied"
            p = await c.create(pod(f"p-{tag}", namespace))
            bound = await c.bind(namespace, f"p-{tag}", node_x, uid=p["metadata"]["uid"])
            assert bound["spec"]["nodeName"] == node_x
            bound["status"] = {"phase": "Running"}
            assert (await c.update_status(bound))["status"]["phase"] == "Running"
            many = await c.bind_many([{"namespace": namespace, "name": f"p-{tag}", "node_name": node_y},
                                      {"namespace": namespace, "name": "absent", "node_name": node_y}])
            assert isinstance(many[0], Conflict) and isinstance(many[1], NotFound)
            _, finished = await c.delete("configmaps", f"cm-{tag}-applied", namespace)
            assert finished

        # The same failures, with the same classes and the same messages.
        stale = await streamed.get("configmaps", "cm-s", namespace)
        stale["metadata"]["resourceVersion"] = "1"
        stale_u = await unary.get("configmaps", "cm-u", namespace)
        stale_u["metadata"]["resourceVersion"] = "1"
        bad = configmap("Not_A_Name", namespace)
        for make in (lambda c, t: c.get("configmaps", "absent", namespace),
                     lambda c, t: c.create(configmap(f"cm-{t}", namespace)),
                     lambda c, t: c.create(bad),
                     lambda c, t: c.delete("configmaps", "absent", namespace),
                     lambda c, t: c.bind(namespace, "absent", node_x)):
            s, u = await outcome(make(streamed, "s")), await outcome(make(unary, "u"))
            assert s[0] == u[0] != "OK"
            assert s[1].replace("cm-s", "cm-?") == u[1].replace("cm-u", "cm-?")
        assert (await outcome(streamed.update(stale)))[0] == "Conflict"
        assert (await outcome(streamed.create(configmap("cm-s", namespace))))[0] == AlreadyExists.__name__
        invalid = await outcome(streamed.create(bad))
        assert invalid[0] == Invalid.__name__ and "metadata.name" in invalid[1]


async def test_many_requests_at_once_share_one_stream_and_each_gets_its_answer(api_server, namespace):
    async with Client(api_server.address, credentials=api_server.credentials, timeout=20) as c:
        await c.get("namespaces", namespace)
        stream = c._requests._stream
        names = [f"cm-{i}" for i in range(300)]
        created = await asyncio.gather(*(c.create(configmap(n, namespace, n=n)) for n in names))
        assert [o["metadata"]["name"] for o in created] == names
        assert [o["data"]["n"] for o in created] == names
        got = await asyncio.gather(*(c.get("configmaps", n, namespace) for n in names),
                                   *(outcome(c.get("configmaps", f"absent-{i}", namespace)) for i in range(50)))
        assert [o["metadata"]["name"] for o in got[:300]] == names
        assert all(o[0] == "NotFound" and f"absent-{i}" in o[1] for i, o in enumerate(got[300:]))
        assert c._requests._stream is stream, "every request went on the one stream"


async def test_a_request_over_the_message_limit_fails_alone(api_server, namespace):
    async with Client(api_server.address, credentials=api_server.credentials, timeout=20) as c:
        await c.get("namespaces", namespace)
        stream = c._requests._stream
        huge = configmap("huge", namespace, blob="x" * (9 * 1024 * 1024))   # over the server's 8 MiB a message
        big, small = await asyncio.gather(outcome(c.create(huge)), c.create(configmap("small", namespace)))
        assert big[0] == "RequestEntityTooLarge" and "larger than max" in big[1]
        assert small["metadata"]["name"] == "small"
        assert c._requests._stream is stream and not stream.broken


async def test_a_request_past_its_deadline_fails_with_deadline_exceeded(api_server, namespace):
    async with Client(api_server.address, credentials=api_server.credentials, timeout=0.00001) as c:
        with pytest.raises(ApiError) as err:
            await c.get("configmaps", "anything", namespace)
        assert err.value.status == "DEADLINE_EXCEEDED"
    async with Client(api_server.address, credentials=api_server.credentials, timeout=10) as c:   # the server is fine afterwards
        assert (await c.get("namespaces", namespace))["metadata"]["name"] == namespace


async def test_a_request_without_a_verb_is_refused_naming_the_field(api_server):
    async with api_server.credentials.channel(api_server.address) as channel:
        call = pb_grpc.ApiStub(channel).Requests()
        await call.write(pb.RequestBatch(requests=[pb.StreamRequest(id=7)]))
        (answer,) = (await asyncio.wait_for(call.read(), 10)).responses
        await call.done_writing()
        assert answer.id == 7 and answer.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "request: one of apply, create, get" in answer.message


async def test_a_server_restart_fails_the_stream_and_the_next_request_opens_another(etcd, tmp_path):
    args = ["--etcd-prefix", f"/test-{uuid.uuid4().hex[:8]}", "--no-scheduler", "--no-controllers"]
    cp = ControlPlane(tmp_path / "cp", etcd_endpoints=etcd.endpoint, extra_args=args).start()
    try:
        async with Client(cp.address, credentials=cp.credentials, timeout=10) as c:
            await c.create(configmap("before", "default"))
            first = c._requests._stream
            cp.stop()
            with pytest.raises(Unavailable) as err:
                await c.get("configmaps", "before", "default")
            assert cp.address in err.value.message
            cp = ControlPlane(tmp_path / "cp", etcd_endpoints=etcd.endpoint, port=cp.port, extra_args=args).start()
            deadline = asyncio.get_running_loop().time() + 20
            while True:
                try:
                    got = await c.get("configmaps", "before", "default")
                    break
                except Unavailable:
                    assert asyncio.get_running_loop().time() < deadline, "no new stream after the restart"
                    await asyncio.sleep(0.1)
            assert got["data"] == {"k": "v"}
            assert c._requests._stream is not first
    finally:
        cp.stop()
