"""The official Python `kubernetes` client against the REST API (controlplane/rest).

With the admin kubeconfig the control plane wrote: list, create, watch and a missing object
as the client's ApiException. With a ServiceAccount's bearer token (as a pod would hold
it): refused until the account is bound to `view`, then allowed.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from procs import ControlPlane

kubernetes = pytest.importorskip("kubernetes", reason="the kubernetes client is a test dependency (pyproject [test])")
from kubernetes import client as k8s, config as k8s_config, watch as k8s_watch  # noqa: E402


def admin_api(api_server: ControlPlane) -> k8s.ApiClient:
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(str(api_server.kubeconfig), client_configuration=configuration)
    return k8s.ApiClient(configuration)


async def test_list_create_watch_and_not_found(api_server: ControlPlane, namespace: str) -> None:
    core = k8s.CoreV1Api(admin_api(api_server))
    pod = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="pyp", labels={"app": "py"}),
                    spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c", image="busybox", command=["sleep", "9"])]))
    created = await asyncio.to_thread(core.create_namespaced_pod, namespace, pod)
    assert created.metadata.uid and created.spec.restart_policy == "Always"   # defaulted by the server
    listed = await asyncio.to_thread(core.list_namespaced_pod, namespace, label_selector="app=py")
    assert [p.metadata.name for p in listed.items] == ["pyp"]

    def watched() -> list[tuple[str, str]]:
        out = []
        for event in k8s_watch.Watch().stream(core.list_namespaced_pod, namespace, timeout_seconds=1):
            out.append((event["type"], event["object"].metadata.name))
        return out
    assert await asyncio.to_thread(watched) == [("ADDED", "pyp")]
    with pytest.raises(k8s.ApiException) as err:
        await asyncio.to_thread(core.read_namespaced_pod, "nope", namespace)
    assert (err.value.status, '"reason":"NotFound"' in err.value.body) == (404, True)


async def test_service_account_token_refused_then_allowed_with_view(api_server: ControlPlane, client: Any,
                                                                    namespace: str) -> None:
    await client.create({"apiVersion": "v1", "kind": "ServiceAccount",
                         "metadata": {"name": "robot", "namespace": namespace}})
    await client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": namespace},
                         "spec": {"serviceAccountName": "robot",
                                  "containers": [{"name": "c", "image": "busybox"}]}})
    token, _ = await client.token_request("robot", namespace, pod_name="app")
    configuration = k8s.Configuration()
    configuration.host = f"https://127.0.0.1:{api_server.rest_port}"
    configuration.ssl_ca_cert = str(api_server.state_dir / "pki" / "ca.crt")
    configuration.api_key = {"authorization": f"Bearer {token}"}
    core = k8s.CoreV1Api(k8s.ApiClient(configuration))
    with pytest.raises(k8s.ApiException) as err:
        await asyncio.to_thread(core.list_namespaced_pod, namespace)
    assert err.value.status == 403
    assert f'pods is forbidden: User \\"system:serviceaccount:{namespace}:robot\\" cannot list' in err.value.body
    await client.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                         "metadata": {"name": f"view-{uuid.uuid4().hex[:6]}", "namespace": namespace},
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                         "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": namespace}]})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:   # the API server's RBAC cache follows the binding within milliseconds
        try:
            pods = await asyncio.to_thread(core.list_namespaced_pod, namespace)
            break
        except k8s.ApiException as exc:
            assert exc.status == 403 and loop.time() < deadline, exc
            await asyncio.sleep(0.05)
    assert [p.metadata.name for p in pods.items] == ["app"]


async def test_delete_collection_by_label(api_server: ControlPlane, namespace: str) -> None:
    core = k8s.CoreV1Api(admin_api(api_server))
    for name, tier in (("a", "x"), ("b", "x"), ("c", "y")):
        body = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name, labels={"tier": tier}), data={"k": name})
        await asyncio.to_thread(core.create_namespaced_config_map, namespace, body)
    await asyncio.to_thread(core.delete_collection_namespaced_config_map, namespace, label_selector="tier=x")
    left = await asyncio.to_thread(core.list_namespaced_config_map, namespace, label_selector="tier")
    assert [c.metadata.name for c in left.items] == ["c"]
