"""Authorization and admission on a real API server and etcd, over TLS: RBAC, the Node
authorizer, NodeRestriction, Pod Security, ServiceAccount tokens, access reviews, the relayed verbs.

Each identity is a client certificate the test issues from the session API server's cluster CA
(as an operator with the CA would), CN the user and O its groups; the ServiceAccount test
authenticates with the bearer token the API server issued.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from controlplane.client import Client, Credentials, Forbidden, NotFound, Unauthenticated
from controlplane.client.errors import ApiError
from controlplane.pki.ca import ClusterPKI

RBAC = "rbac.authorization.k8s.io/v1"
NODE_GROUPS = ("system:nodes",)


class Identities:
    """Clients of the session's API server as whoever a test needs, closed at the end."""

    def __init__(self, api_server: Any):
        self.api_server = api_server
        self.pki = ClusterPKI(api_server.state_dir / "pki")
        self.clients: list[Client] = []

    def _client(self, credentials: Credentials) -> Client:
        client = Client(self.api_server.address, credentials=credentials, timeout=10)
        self.clients.append(client)
        return client

    def user(self, name: str, groups: tuple[str, ...] = ()) -> Client:
        pair = self.pki.issue(common_name=name, organizations=groups, client=True)
        return self._client(Credentials(ca=self.pki.ca_pem, cert=pair.cert, key=pair.key))

    def token(self, token: str) -> Client:
        return self._client(Credentials(ca=self.pki.ca_pem, token=token))

    def admin(self) -> Client:
        return self.user("test-admin", ("system:masters",))


@pytest.fixture
async def ids(api_server) -> AsyncIterator[Identities]:
    identities = Identities(api_server)
    try:
        yield identities
    finally:
        for client in identities.clients:
            await client.close()


async def eventually(call: Callable[[], Awaitable[Any]], timeout: float = 5.0) -> Any:
    """The call's result once the API server's caches (which authorization reads) caught up with
    a write just made: Forbidden until then."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except Forbidden:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def new_namespace(admin: Any, labels: dict[str, str] | None = None) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    await admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}})
    return name


def pod(name: str, ns: str, *, node: str = "", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {**({"nodeName": node} if node else {}),
                     "containers": [{"name": "c", "image": "busybox:1.36"}], **spec}}


async def bind_view(admin: Any, ns: str, subject: dict[str, Any]) -> None:
    await admin.create({"apiVersion": RBAC, "kind": "RoleBinding", "metadata": {"name": "viewers", "namespace": ns},
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                        "subjects": [subject]})


async def test_view_identity_can_get_but_not_create(ids: Identities, tmp_path) -> None:
    admin = ids.admin()
    ns = await new_namespace(admin)
    await admin.create(pod("web", ns))
    viewer = ids.user("alice")
    with pytest.raises(Forbidden) as err:
        await viewer.get("pods", "web", ns)
    assert str(err.value) == (f'pods "web" is forbidden: User "alice" cannot get resource "pods" in API group "" '
                              f'in the namespace "{ns}"')
    await bind_view(admin, ns, {"kind": "User", "name": "alice"})
    assert (await eventually(lambda: viewer.get("pods", "web", ns)))["metadata"]["name"] == "web"
    assert [p["metadata"]["name"] for p in (await viewer.list("pods", ns)).items] == ["web"]
    with pytest.raises(Forbidden, match=f'User "alice" cannot create resource "pods" in API group "" in the '
                                        f'namespace "{ns}"'):
        await viewer.create(pod("mine", ns))
    with pytest.raises(Forbidden, match='cannot create resource "deployments" in API group "apps"'):
        await viewer.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": ns},
                             "spec": {"selector": {"matchLabels": {"a": "b"}},
                                      "template": {"metadata": {"labels": {"a": "b"}},
                                                   "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    with pytest.raises(Forbidden, match='cannot get resource "secrets"'):
        await viewer.get("secrets", "any", ns)
    with pytest.raises(Forbidden, match='cannot list resource "pods" in API group "" at the cluster scope'):
        await viewer.list("pods")     # the binding is in one namespace only
    # The relayed verbs: exec is pods/exec (not in view), images are for cluster-admin only.
    with pytest.raises(Forbidden, match='cannot create resource "pods/exec"'):
        async for _ in viewer.exec_session(namespace=ns, pod="web", container="c", command=["id"]).outputs():
            pass
    with pytest.raises(Forbidden, match='cannot create resource "images" in API group "skiff.io"'):
        await viewer.pull_image("busybox:1.36")
    # `ctl image load` (image poisoning: it replaces a tag on every node) is refused before a byte
    # reaches any node.
    archive = tmp_path / "image.tar"
    archive.write_bytes(b"not even an archive")
    with pytest.raises(Forbidden, match='cannot create resource "images" in API group "skiff.io"'):
        await viewer.load_image(str(archive))
    with pytest.raises(Forbidden, match='cannot list resource "images"'):
        await viewer.list_images()


async def test_denied_watch_and_delete(ids: Identities) -> None:
    admin = ids.admin()
    ns = await new_namespace(admin)
    stranger = ids.user("mallory")
    with pytest.raises(Forbidden, match='cannot watch resource "pods"'):
        async for _ in stranger.watch("pods", ns):
            break
    await admin.create(pod("web", ns))
    with pytest.raises(Forbidden, match='cannot delete resource "pods"'):
        await stranger.delete("pods", "web", ns)
    await admin.get("pods", "web", ns)


async def test_node_identity_touches_only_its_own(ids: Identities) -> None:
    admin = ids.admin()
    ns = await new_namespace(admin)
    for name in ("n1", "n2"):
        await admin.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    await admin.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1", "namespace": ns},
                        "stringData": {"k": "v"}})
    await admin.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s2", "namespace": ns},
                        "stringData": {"k": "v"}})
    await admin.create(pod("on-n1", ns, node="n1", volumes=[{"name": "s", "secret": {"secretName": "s1"}}]))
    await admin.create(pod("on-n2", ns, node="n2", volumes=[{"name": "s", "secret": {"secretName": "s2"}}]))
    node = ids.user("system:node:n1", NODE_GROUPS)
    await eventually(lambda: node.get("pods", "on-n1", ns))   # the API server's pods cache has them

    # Its own: the Node, its pods (by field selector), their Secrets, their status.
    mine = await node.get("nodes", "n1")
    mine["metadata"]["labels"] = {"kubernetes.io/hostname": "n1"}
    await node.update(mine)
    assert [p["metadata"]["name"] for p in (await node.list("pods", field_selector="spec.nodeName=n1")).items] == ["on-n1"]
    assert (await node.get("secrets", "s1", ns))["metadata"]["name"] == "s1"
    own = await node.get("pods", "on-n1", ns)
    own["status"] = {"phase": "Running"}
    await node.update_status(own)
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "n1", "namespace": "skiff-node-lease"}, "spec": {"holderIdentity": "n1"}}
    await node.create(lease)

    # Another node's pod, its Secret, its Node; a Deployment; every pod: refused, naming the rule.
    with pytest.raises(Forbidden) as err:
        await node.get("pods", "on-n2", ns)
    assert str(err.value) == (f'pods "on-n2" is forbidden: User "system:node:n1" cannot get resource "pods" in API '
                              f'group "" in the namespace "{ns}": node "n1" can only get pods bound to it; pod '
                              f'"{ns}/on-n2" is bound to node "n2"')
    theirs = await admin.get("pods", "on-n2", ns)
    theirs["status"] = {"phase": "Failed"}
    with pytest.raises(Forbidden, match='can only update pods bound to it'):
        await node.update_status(theirs)
    with pytest.raises(Forbidden, match="no relationship found between node 'n1' and this object"):
        await node.get("secrets", "s2", ns)
    other = await admin.get("nodes", "n2")
    other["spec"] = {"unschedulable": True}
    with pytest.raises(Forbidden, match='node "n1" may only write its own Node object, not "n2"'):
        await node.update(other)
    with pytest.raises(Forbidden, match='User "system:node:n1" cannot create resource "deployments" in API group '
                                        '"apps".*the Node authorizer allows a node only'):
        await node.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": ns},
                           "spec": {"selector": {"matchLabels": {"a": "b"}},
                                    "template": {"metadata": {"labels": {"a": "b"}},
                                                 "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    with pytest.raises(Forbidden, match="spec.nodeName=n1"):
        await node.list("pods")
    with pytest.raises(Forbidden, match='its own Lease'):
        await node.create({**lease, "metadata": {"name": "n2", "namespace": "skiff-node-lease"}})

    # NodeRestriction: not even its own Node's node-restriction.kubernetes.io/ labels.
    mine = await node.get("nodes", "n1")
    mine["metadata"]["labels"]["node-restriction.kubernetes.io/pool"] = "gold"
    with pytest.raises(Forbidden, match="not allowed to modify labels: node-restriction.kubernetes.io/pool"):
        await node.update(mine)
    await admin.update(mine)   # an administrator may


async def test_pod_security_levels(ids: Identities) -> None:
    admin = ids.admin()
    baseline = await new_namespace(admin)
    privileged = await new_namespace(admin, {"pod-security.kubernetes.io/enforce": "privileged"})
    restricted = await new_namespace(admin, {"pod-security.kubernetes.io/enforce": "restricted"})
    bad = dict(securityContext={"privileged": True})
    with pytest.raises(Forbidden) as err:
        await admin.create(pod("p", baseline, containers=[{"name": "c", "image": "x", **bad}],
                               hostPID=True, volumes=[{"name": "root", "hostPath": {"path": "/"}}]))
    assert str(err.value) == ('pods "p" is forbidden: violates PodSecurity "baseline:latest": spec.hostPID: host '
                              'namespaces are not allowed (hostPID=true); spec.containers[0].securityContext.'
                              'privileged: privileged containers are not allowed; spec.volumes[0].hostPath: hostPath '
                              'volumes are not allowed (volume "root")')
    await admin.create(pod("p", privileged, containers=[{"name": "c", "image": "x", **bad}], hostPID=True))
    await admin.create(pod("plain", baseline))
    with pytest.raises(Forbidden, match=r'"restricted:latest": spec.containers\[0\].securityContext.'
                                        r'allowPrivilegeEscalation: must be set to false'):
        await admin.create(pod("plain", restricted))
    with pytest.raises(Forbidden, match="hostNetwork"):   # apply goes through admission too
        await admin.apply(pod("applied", baseline, hostNetwork=True))
    with pytest.raises(ApiError, match=r"metadata.labels\[pod-security.kubernetes.io/enforce\]: Unsupported value"):
        await admin.create({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": f"t-{uuid.uuid4().hex[:8]}",
                                         "labels": {"pod-security.kubernetes.io/enforce": "lax"}}})
    # kube-system is privileged by default.
    await admin.create(pod(f"sys-{uuid.uuid4().hex[:6]}", "kube-system", hostNetwork=True))


async def test_service_account_token_bound_to_view_lists_pods(ids: Identities) -> None:
    admin = ids.admin()
    ns = await new_namespace(admin)
    await admin.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": ns}})
    await admin.create(pod("app", ns, node="n1", serviceAccountName="robot"))
    # The node the pod runs on asks for its token (as the agent does); another node may not.
    with pytest.raises(Forbidden):
        await ids.user("system:node:n2", NODE_GROUPS).token_request("robot", ns, pod_name="app")
    n1 = ids.user("system:node:n1", NODE_GROUPS)
    token, expires = await eventually(lambda: n1.token_request("robot", ns, pod_name="app"))
    assert expires > time.time() + 3000
    in_pod = ids.token(token)
    with pytest.raises(Forbidden, match=f'User "system:serviceaccount:{ns}:robot" cannot list resource "pods"'):
        await in_pod.list("pods", ns)
    await bind_view(admin, ns, {"kind": "ServiceAccount", "name": "robot", "namespace": ns})
    assert [p["metadata"]["name"] for p in (await eventually(lambda: in_pod.list("pods", ns))).items] == ["app"]
    # The token dies with its pod.
    await admin.delete("pods", "app", ns, grace_seconds=0)
    deadline = time.monotonic() + 5
    while True:
        try:
            await in_pod.list("pods", ns)
        except Unauthenticated:
            break
        assert time.monotonic() < deadline, "the token still works after its pod was deleted"
        await asyncio.sleep(0.05)


async def test_access_review_and_impersonation(ids: Identities) -> None:
    admin = ids.admin()
    ns = await new_namespace(admin)
    await bind_view(admin, ns, {"kind": "User", "name": "alice"})
    alice = ids.user("alice")
    deadline = time.monotonic() + 5
    while not (await alice.access_review("get", "pods", namespace=ns))["allowed"]:
        assert time.monotonic() < deadline, "the RoleBinding is not seen"
        await asyncio.sleep(0.05)
    assert (await alice.access_review("create", "pods", namespace=ns))["allowed"] is False
    assert (await alice.access_review("get", "pods/log", namespace=ns))["allowed"] is True
    # Reviewing someone else is impersonating them: alice may not, an admin may.
    with pytest.raises(Forbidden, match='User "alice" cannot impersonate resource "users"'):
        await alice.access_review("get", "pods", namespace=ns, user="bob")
    review = await admin.access_review("get", "pods", namespace=ns, user="alice")
    assert review == {"allowed": True, "reason": "", "user": "alice"}
    review = await admin.access_review("get", "pods", namespace=ns, user="system:node:n1", groups=["system:nodes"])
    assert review["allowed"] is False and "can only get pods bound to it" in review["reason"]


async def test_default_policy_exists_and_can_be_frozen(ids: Identities) -> None:
    admin = ids.admin()
    names = {r["metadata"]["name"] for r in (await admin.list("clusterroles")).items}
    assert {"cluster-admin", "admin", "edit", "view", "system:kube-scheduler",
            "system:kube-controller-manager"} <= names
    binding = await admin.get("clusterrolebindings", "cluster-admin")
    assert binding["subjects"] == [{"kind": "Group", "name": "system:masters",
                                    "apiGroup": "rbac.authorization.k8s.io"}]
    with pytest.raises(NotFound):
        await admin.get("clusterroles", "no-such-role")


async def test_pods_created_by_controllers_meet_pod_security(ids: Identities) -> None:
    from controllers_support import running, until
    from controlplane.controllers.replicaset import ReplicaSetController
    admin = ids.admin()
    ns = await new_namespace(admin)
    await admin.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs", "namespace": ns},
                        "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                                 "template": {"metadata": {"labels": {"a": "b"}},
                                              "spec": {"hostNetwork": True,
                                                       "containers": [{"name": "c", "image": "x"}]}}}})

    async def refused() -> list[dict]:
        events = (await admin.list("events", ns)).items
        return [e for e in events if e.get("reason") == "FailedCreate"]
    async with running(admin, ReplicaSetController(namespace=ns)):
        events = await until(refused, message="the ReplicaSet's privileged pod was not refused")
    assert 'violates PodSecurity "baseline:latest": spec.hostNetwork' in events[0]["message"]
    assert (await admin.list("pods", ns)).items == []
