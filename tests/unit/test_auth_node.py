"""The Node authorizer and NodeRestriction (controlplane/auth/node.py): table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.auth.authz import Attributes, Decision, Forbidden
from controlplane.auth.identity import NODES, UserInfo
from controlplane.auth.node import NodeAuthorizer, admit_node_write

N1 = UserInfo("system:node:n1", (NODES, "system:authenticated"))


def pod(name: str, node: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}], **spec}}


def authorizer() -> NodeAuthorizer:
    a = NodeAuthorizer()
    a.graph.put(pod("mine", "n1", volumes=[{"name": "s", "secret": {"secretName": "mine-secret"}}],
                    serviceAccountName="robot",
                    containers=[{"name": "c", "image": "x",
                                 "envFrom": [{"configMapRef": {"name": "mine-config"}}]}]))
    a.graph.put(pod("theirs", "n2", volumes=[{"name": "s", "secret": {"secretName": "their-secret"}}]))
    return a


CASES = [
    # (verb, group, resource, subresource, namespace, name, field selector, allowed, reason contains)
    ("get", "", "nodes", "", "", "n2", "", True, ""),
    ("update", "", "nodes", "", "", "n1", "", True, ""),
    ("update", "", "nodes", "status", "", "n1", "", True, ""),
    ("update", "", "nodes", "status", "", "n2", "", False, 'may only write its own Node object, not "n2"'),
    ("delete", "", "nodes", "", "", "n1", "", False, "may not delete nodes"),
    ("update", "coordination.k8s.io", "leases", "", "skiff-node-lease", "n1", "", True, ""),
    ("update", "coordination.k8s.io", "leases", "", "skiff-node-lease", "n2", "", False, "its own Lease"),
    ("watch", "", "pods", "", "", "", "spec.nodeName=n1", True, ""),
    ("list", "", "pods", "", "", "", "", False, "field selector spec.nodeName=n1"),
    ("list", "", "pods", "", "", "", "spec.nodeName=n2", False, "field selector spec.nodeName=n1"),
    ("get", "", "pods", "", "default", "mine", "", True, ""),
    ("get", "", "pods", "", "default", "theirs", "", False, 'is bound to node "n2"'),
    ("update", "", "pods", "status", "default", "mine", "", True, ""),
    ("update", "", "pods", "status", "default", "theirs", "", False, "pods bound to it"),
    ("update", "", "pods", "", "default", "mine", "", False, "may not update pods"),
    ("delete", "", "pods", "", "default", "mine", "", True, ""),
    ("create", "", "pods", "", "default", "", "", False, "may not create pods"),
    ("get", "", "secrets", "", "default", "mine-secret", "", True, ""),
    ("get", "", "secrets", "", "default", "their-secret", "", False, "no relationship found between node 'n1'"),
    ("list", "", "secrets", "", "default", "", "", False, "may only get secrets that its pods use"),
    ("get", "", "configmaps", "", "default", "mine-config", "", True, ""),
    ("get", "", "serviceaccounts", "", "default", "robot", "", True, ""),
    ("create", "", "serviceaccounts", "token", "default", "robot", "", True, ""),
    ("create", "", "serviceaccounts", "token", "default", "default", "", False, "no relationship"),
    ("list", "", "services", "", "", "", "", True, ""),
    ("watch", "discovery.k8s.io", "endpointslices", "", "", "", "", True, ""),
    ("create", "", "events", "", "default", "", "", True, ""),
    ("create", "apps", "deployments", "", "default", "", "", False, 'may not create deployments.apps'),
]


@pytest.mark.parametrize("verb,group,resource,sub,ns,name,fields,allowed,reason", CASES)
def test_node_decisions(verb: str, group: str, resource: str, sub: str, ns: str, name: str, fields: str,
                        allowed: bool, reason: str) -> None:
    decision, why = authorizer().authorize(Attributes(N1, verb, resource, group, sub, ns, name, fields))
    assert decision is (Decision.ALLOW if allowed else Decision.NO_OPINION)
    assert reason in why


def test_graph_follows_pods_moving_and_going() -> None:
    a = authorizer()
    secret = Attributes(N1, "get", "secrets", "", "", "default", "their-secret")
    assert a.authorize(secret)[0] is Decision.NO_OPINION
    a.graph.put(pod("also-mine", "n1", volumes=[{"name": "s", "secret": {"secretName": "their-secret"}}]))
    assert a.authorize(secret)[0] is Decision.ALLOW
    a.graph.remove(("default", "also-mine"))
    assert a.authorize(secret)[0] is Decision.NO_OPINION     # n2's pod still uses it, but not ours


def test_other_identities_get_no_opinion() -> None:
    decision, reason = authorizer().authorize(Attributes(UserInfo("alice"), "get", "secrets", "", "", "default", "x"))
    assert (decision, reason) == (Decision.NO_OPINION, "")
    # A name that looks like a node's is not one without the group.
    fake = UserInfo("system:node:n1", ("system:authenticated",))
    assert authorizer().authorize(Attributes(fake, "get", "nodes", "", "", "", "n1"))[0] is Decision.NO_OPINION


def test_token_only_for_own_pods() -> None:
    a = authorizer()
    a.check_token_pod(N1, pod("mine", "n1"))
    with pytest.raises(Forbidden, match="can only request tokens for pods bound to it"):
        a.check_token_pod(N1, pod("theirs", "n2"))


@pytest.mark.parametrize("old,new,refused", [
    ({}, {"kubernetes.io/hostname": "n1"}, False),
    ({}, {"node-restriction.kubernetes.io/pool": "gold"}, True),
    ({"node-restriction.kubernetes.io/pool": "gold"}, {"node-restriction.kubernetes.io/pool": "gold", "a": "b"}, False),
    ({"node-restriction.kubernetes.io/pool": "gold"}, {"node-restriction.kubernetes.io/pool": "silver"}, True),
    ({"node-restriction.kubernetes.io/pool": "gold"}, {}, True),
])
def test_node_restriction_labels(old: dict, new: dict, refused: bool) -> None:
    node = lambda labels: {"metadata": {"name": "n1", "labels": labels}}   # noqa: E731
    if refused:
        with pytest.raises(Forbidden, match="node-restriction.kubernetes.io/pool"):
            admit_node_write(N1, "Node", node(new), node(old))
    else:
        admit_node_write(N1, "Node", node(new), node(old))
    admit_node_write(UserInfo("admin", ("system:masters",)), "Node", node(new), node(old))   # admins may


def test_a_node_gets_only_the_volumes_its_pods_claims_are_bound_to_or_pinned_to_it() -> None:
    from api.volumebinding import pinned_node_affinity
    objects = {
        ("persistentvolumeclaims", "default", "data"): {"spec": {"volumeName": "pv-data"}},
        ("persistentvolumeclaims", "default", "other"): {"spec": {"volumeName": "pv-other"}},
        ("persistentvolumes", "", "pv-data"): {"spec": {"claimRef": {"namespace": "default", "name": "data"}}},
        ("persistentvolumes", "", "pv-other"): {"spec": {"claimRef": {"namespace": "default", "name": "other"}}},
        ("persistentvolumes", "", "pv-here"): {"spec": {"nodeAffinity": pinned_node_affinity("n1")}},
        ("persistentvolumes", "", "pv-there"): {"spec": {"nodeAffinity": pinned_node_affinity("n2")}},
    }
    a = NodeAuthorizer(lookup=lambda plural, ns, name: objects.get((plural, ns, name)))
    a.graph.put(pod("db", "n1", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]))
    a.graph.put(pod("db2", "n2", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "other"}}]))

    def get(name: str) -> Decision:
        return a.authorize(Attributes(N1, "get", "persistentvolumes", "", "", "", name))[0]
    assert [get(n) for n in ("pv-data", "pv-here", "pv-gone", "pv-other", "pv-there")] == \
        [Decision.ALLOW, Decision.ALLOW, Decision.ALLOW, Decision.NO_OPINION, Decision.NO_OPINION]
    assert a.authorize(Attributes(N1, "list", "persistentvolumes", "", "", "", ""))[0] is Decision.NO_OPINION
