"""The EndpointSlice and Endpoints controllers against a real API server: endpoints follow
the pods' readiness (set through the API as an agent would), named target ports, slices of
at most 100, Services without selector left alone, and no writes when nothing changed."""

from __future__ import annotations

import asyncio

from controllers_support import running, until

from controlplane.controllers.endpoints import EndpointsController
from controlplane.controllers.endpointslice import EndpointSliceController

SERVICE_LABEL = "kubernetes.io/service-name"


def service(name: str, namespace: str, *, selector: dict | None = None, target_port=8080, **spec) -> dict:
    body = {"ports": [{"name": "http", "port": 80, "targetPort": target_port}], **spec}
    if selector is not None:
        body["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}, "spec": body}


def pod(name: str, namespace: str, labels: dict, ports: list | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"nodeName": "node-a",
                     "containers": [{"name": "c", "image": "busybox", "ports": ports or []}]}}


async def set_status(client, p: dict, ip: str, ready: bool) -> dict:
    """What an agent reports: Running, the pod IP, the Ready condition."""
    current = await client.get("Pod", p["metadata"]["name"], p["metadata"]["namespace"])
    status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return await client.update_status({**current, "status": status})


async def slices_of(client, namespace: str, service: str) -> list[dict]:
    return (await client.list("EndpointSlice", namespace, label_selector=f"{SERVICE_LABEL}={service}")).items


def endpoints_by_ip(slices: list[dict]) -> dict[str, dict]:
    return {ep["addresses"][0]: ep for s in slices for ep in s["endpoints"]}


async def test_endpoints_follow_readiness(client, namespace):
    async with running(client, EndpointSliceController(namespace=namespace), EndpointsController(namespace=namespace)):
        await client.create(service("web", namespace, selector={"app": "web"}))
        pods = [await client.create(pod(f"web-{i}", namespace, {"app": "web"})) for i in range(3)]
        await client.create(pod("other", namespace, {"app": "db"}))
        for i, p in enumerate(pods):
            await set_status(client, p, f"198.19.0.{10 + i}", ready=i < 2)

        async def three():
            eps = endpoints_by_ip(await slices_of(client, namespace, "web"))
            return eps if len(eps) == 3 else None
        eps = await until(three, message="3 endpoints")
        assert eps["198.19.0.10"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
        assert eps["198.19.0.12"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
        assert eps["198.19.0.10"]["targetRef"]["name"] == "web-0" and eps["198.19.0.10"]["nodeName"] == "node-a"
        s, = await slices_of(client, namespace, "web")
        assert s["addressType"] == "IPv4" and s["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
        assert s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"

        async def endpoints_object():
            ep = await client.get("Endpoints", "web", namespace)
            subset = (ep.get("subsets") or [{}])[0]
            ready = [a["ip"] for a in subset.get("addresses") or []]
            return subset if ready == ["198.19.0.10", "198.19.0.11"] else None
        subset = await until(endpoints_object, message="Endpoints with 2 ready addresses")
        assert [a["ip"] for a in subset["notReadyAddresses"]] == ["198.19.0.12"]

        # The third turns ready; the first stops being ready.
        await set_status(client, pods[2], "198.19.0.12", ready=True)
        await set_status(client, pods[0], "198.19.0.10", ready=False)

        async def flipped():
            eps = endpoints_by_ip(await slices_of(client, namespace, "web"))
            return eps if eps["198.19.0.12"]["conditions"]["ready"] and \
                not eps["198.19.0.10"]["conditions"]["ready"] else None
        await until(flipped, message="readiness flipped in the slice")

        # A pod being deleted (with a grace period) is terminating: still serving, not ready.
        await client.delete("Pod", "web-1", namespace, grace_seconds=30)

        async def terminating():
            ep = endpoints_by_ip(await slices_of(client, namespace, "web")).get("198.19.0.11")
            return ep if ep and ep["conditions"]["terminating"] else None
        ep = await until(terminating, message="terminating endpoint")
        assert ep["conditions"] == {"ready": False, "serving": True, "terminating": True}

        # The Service goes: its slices and Endpoints go too.
        await client.delete("Service", "web", namespace)

        async def gone():
            left = await slices_of(client, namespace, "web")
            eps = (await client.list("Endpoints", namespace)).items
            return not left and not eps
        await until(gone, message="slices and Endpoints deleted with the Service")


async def test_named_target_port_and_event_for_a_pod_lacking_it(client, namespace):
    async with running(client, EndpointSliceController(namespace=namespace), EndpointsController(namespace=namespace)):
        await client.create(service("api", namespace, selector={"app": "api"}, target_port="web"))
        a = await client.create(pod("api-a", namespace, {"app": "api"}, [{"name": "web", "containerPort": 8080}]))
        b = await client.create(pod("api-b", namespace, {"app": "api"}, [{"name": "web", "containerPort": 9090}]))
        c = await client.create(pod("api-c", namespace, {"app": "api"}, [{"name": "metrics", "containerPort": 9100}]))
        for i, p in enumerate((a, b, c)):
            await set_status(client, p, f"198.19.1.{i + 1}", ready=True)

        async def two_slices():
            slices = [s for s in await slices_of(client, namespace, "api") if s["endpoints"]]
            return slices if len(slices) == 2 and sum(len(s["endpoints"]) for s in slices) == 2 else None
        slices = await until(two_slices, message="one slice per resolved port")
        by_port = {s["ports"][0]["port"]: s["endpoints"][0]["addresses"][0] for s in slices}
        assert by_port == {8080: "198.19.1.1", 9090: "198.19.1.2"}

        async def event():
            events = (await client.list("Event", namespace)).items
            return [e for e in events if e["reason"] == "FailedToResolveTargetPort"]
        ev, = await until(event, message="an event naming the pod lacking the port")
        assert ev["type"] == "Warning" and ev["involvedObject"]["name"] == "api"
        assert 'pod api-c has no container port named "web"' in ev["message"]


async def test_more_than_100_endpoints_make_several_slices(client, namespace):
    async with running(client, EndpointSliceController(namespace=namespace)):
        await client.create(service("big", namespace, selector={"app": "big"}))
        created = await asyncio.gather(*(client.create(pod(f"big-{i}", namespace, {"app": "big"})) for i in range(230)))
        await asyncio.gather(*(set_status(client, p, f"198.19.{2 + i // 200}.{i % 200 + 1}", ready=True)
                               for i, p in enumerate(created)))

        async def packed():
            slices = await slices_of(client, namespace, "big")
            sizes = sorted(len(s["endpoints"]) for s in slices)
            return sizes if sum(sizes) == 230 else None
        sizes = await until(packed, timeout=30, message="230 endpoints in slices")
        assert max(sizes) <= 100 and len(sizes) == 3
        ips = [ep["addresses"][0] for s in await slices_of(client, namespace, "big") for ep in s["endpoints"]]
        assert len(set(ips)) == 230   # none twice


async def test_service_without_selector_left_alone_and_no_write_storm(client, namespace):
    async with running(client, EndpointSliceController(namespace=namespace), EndpointsController(namespace=namespace)):
        await client.create(service("ext", namespace))
        own = await client.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                                   "metadata": {"name": "ext-1", "namespace": namespace,
                                                "labels": {SERVICE_LABEL: "ext"}},
                                   "addressType": "IPv4",
                                   "endpoints": [{"addresses": ["192.0.2.1"], "conditions": {"ready": True}}],
                                   "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
        await client.create(service("web", namespace, selector={"app": "web"}))
        p = await client.create(pod("web-0", namespace, {"app": "web"}))
        await set_status(client, p, "198.19.5.1", ready=True)

        async def one():
            slices = await slices_of(client, namespace, "web")
            return slices if slices and slices[0]["endpoints"] else None
        s, = await until(one, message="the web slice")
        version = s["metadata"]["resourceVersion"]
        # Pod updates that change nothing the endpoints depend on write nothing.
        for i in range(5):
            current = await client.get("Pod", "web-0", namespace)
            await client.update_status({**current, "status": {**current["status"], "message": f"tick {i}"}})
        await client.update({**(await client.get("Service", "ext", namespace))})
        await asyncio.sleep(0.5)   # give a (wrong) write the time to happen
        s2, = await slices_of(client, namespace, "web")
        assert s2["metadata"]["resourceVersion"] == version
        mine = await client.get("EndpointSlice", "ext-1", namespace)
        assert mine["metadata"]["resourceVersion"] == own["metadata"]["resourceVersion"]
        assert [e["metadata"]["name"] for e in (await client.list("Endpoints", namespace)).items] == ["web"]
