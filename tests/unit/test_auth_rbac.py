"""The RBAC authorizer (controlplane/auth/rbac.py) on in-memory role and binding sets: table-driven."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from api.registry import parse_object
from api.errors import ValidationFailed
from controlplane.auth.authz import Attributes, Chain, Decision, Forbidden, forbidden_message
from controlplane.auth.bootstrap import default_objects
from controlplane.auth.identity import MASTERS, UserInfo
from controlplane.auth.rbac import KINDS, PrivilegedGroups, RBACAuthorizer

RBAC = "rbac.authorization.k8s.io/v1"


@dataclass
class FakeCache:
    """The two attributes RBAC reads of a watch cache."""
    objects: dict[Any, dict[str, Any]] = field(default_factory=dict)
    revision: int = 0

    def put(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.objects[(meta.get("namespace", ""), meta["name"])] = obj
        self.revision += 1


def caches_with(*objects: dict[str, Any]) -> dict[str, FakeCache]:
    caches = {kind: FakeCache() for kind in KINDS}
    plural = {"Role": "roles", "ClusterRole": "clusterroles", "RoleBinding": "rolebindings",
              "ClusterRoleBinding": "clusterrolebindings"}
    for obj in [*default_objects(), *objects]:
        parse_object(obj)   # every object in these tables is valid as the API would store it
        caches[plural[obj["kind"]]].put(obj)
    return caches


def role(name: str, ns: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": RBAC, "kind": "Role", "metadata": {"name": name, "namespace": ns}, "rules": list(rules)}


def binding(name: str, ns: str, ref_kind: str, ref: str, *subjects: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": RBAC, "kind": "RoleBinding", "metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind, "name": ref},
            "subjects": list(subjects)}


def cluster_binding(name: str, ref: str, *subjects: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ref},
            "subjects": list(subjects)}


ALICE = UserInfo("alice", ("system:authenticated",))
BOB = UserInfo("bob", ("devs", "system:authenticated"))
SA = UserInfo("system:serviceaccount:team:robot", ("system:serviceaccounts", "system:serviceaccounts:team",
                                                  "system:authenticated"))
OBJECTS = [
    binding("alice-view", "team", "ClusterRole", "view", {"kind": "User", "name": "alice"}),
    binding("devs-edit", "team", "ClusterRole", "edit", {"kind": "Group", "name": "devs"}),
    role("one-secret", "team", {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                                "resourceNames": ["db-pass"]}),
    binding("alice-secret", "team", "Role", "one-secret", {"kind": "User", "name": "alice"}),
    binding("robot-view", "team", "ClusterRole", "view", {"kind": "ServiceAccount", "name": "robot"}),
    role("logs-only", "ops", {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}),
    binding("bob-logs", "ops", "Role", "logs-only", {"kind": "User", "name": "bob"}),
    role("any-sub", "ops", {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]}),
    binding("bob-scale", "ops", "Role", "any-sub", {"kind": "User", "name": "bob"}),
    cluster_binding("alice-nodes", "view", {"kind": "User", "name": "alice"}),
]

CASES = [
    # (user, verb, group, resource, subresource, namespace, name, allowed)
    (ALICE, "get", "", "pods", "", "team", "web", True),
    (ALICE, "list", "", "pods", "", "team", "", True),
    (ALICE, "create", "", "pods", "", "team", "", False),
    (ALICE, "create", "apps", "deployments", "", "team", "", False),
    (ALICE, "get", "", "secrets", "", "team", "db-pass", True),        # resourceNames
    (ALICE, "get", "", "secrets", "", "team", "other", False),
    (ALICE, "list", "", "secrets", "", "team", "", False),             # a named rule never covers a list
    (ALICE, "get", "", "pods", "log", "team", "web", True),            # view has pods/log
    (ALICE, "create", "", "pods", "exec", "team", "web", False),
    (ALICE, "get", "", "pods", "", "elsewhere", "web", True),          # the ClusterRoleBinding to view
    (BOB, "create", "apps", "deployments", "", "team", "", True),      # through the group devs
    (BOB, "create", "", "pods", "exec", "team", "web", True),
    (BOB, "create", "rbac.authorization.k8s.io", "roles", "", "team", "", False),   # edit has no roles
    (BOB, "get", "", "pods", "log", "ops", "x", True),
    (BOB, "get", "", "pods", "", "ops", "x", False),                   # pods/log is not pods
    (BOB, "update", "apps", "deployments", "scale", "ops", "x", True),  # */scale
    (BOB, "update", "apps", "deployments", "", "ops", "x", False),
    (BOB, "create", "apps", "deployments", "", "other", "", False),    # the binding is per namespace
    (SA, "list", "", "pods", "", "team", "", True),                    # ServiceAccount subject
    (SA, "list", "", "pods", "", "default", "", False),
    (ALICE, "create", "skiff.io", "images", "", "", "", False),        # images: cluster-admin only
    (UserInfo("root", (MASTERS,)), "create", "skiff.io", "images", "", "", "", True),
    (UserInfo("nobody"), "get", "", "pods", "", "team", "web", False),
]


@pytest.mark.parametrize("user,verb,group,resource,sub,ns,name,allowed", CASES)
def test_rbac_decisions(user: UserInfo, verb: str, group: str, resource: str, sub: str, ns: str, name: str,
                        allowed: bool) -> None:
    chain = Chain(PrivilegedGroups(MASTERS), RBACAuthorizer(caches_with(*OBJECTS)))
    decision, _ = chain.authorize(Attributes(user, verb, resource, group, sub, ns, name))
    assert (decision is Decision.ALLOW) is allowed


def test_role_changes_are_seen_without_a_restart() -> None:
    caches = caches_with()
    authorizer = RBACAuthorizer(caches)
    attrs = Attributes(ALICE, "get", "pods", "", "", "team", "web")
    assert authorizer.authorize(attrs)[0] is Decision.NO_OPINION
    caches["rolebindings"].put(binding("alice-view", "team", "ClusterRole", "view", {"kind": "User", "name": "alice"}))
    assert authorizer.authorize(attrs)[0] is Decision.ALLOW
    caches["clusterroles"].put({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "view"}, "rules": []})
    assert authorizer.authorize(attrs)[0] is Decision.NO_OPINION      # the role emptied: the grant goes with it


def test_denial_names_who_what_and_where() -> None:
    chain = Chain(RBACAuthorizer(caches_with()))
    with pytest.raises(Forbidden) as err:
        chain.check(Attributes(ALICE, "create", "deployments", "apps", "", "default", ""))
    assert str(err.value) == ('User "alice" cannot create resource "deployments" in API group "apps" '
                              'in the namespace "default"')
    assert forbidden_message(Attributes(ALICE, "get", "nodes", "", "", "", "n1")) == (
        'nodes "n1" is forbidden: User "alice" cannot get resource "nodes" in API group "" at the cluster scope')


@pytest.mark.parametrize("obj,path", [
    (role("r", "ns", {"apiGroups": [""], "resources": ["pods"], "verbs": []}), "rules[0].verbs"),
    (role("r", "ns", {"resources": ["pods"], "verbs": ["get"]}), "rules[0].apiGroups"),
    (role("r", "ns", {"apiGroups": [""], "verbs": ["get"], "nonResourceURLs": ["/x"]}), "rules[0].nonResourceURLs"),
    (binding("b", "ns", "Nope", "x"), "roleRef.kind"),
    (binding("b", "ns", "Role", "x", {"kind": "Robot", "name": "r"}), "subjects[0].kind"),
    (cluster_binding("b", "x", {"kind": "ServiceAccount", "name": "r"}), "subjects[0].namespace"),
])
def test_invalid_rbac_objects_name_the_field(obj: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_object(obj)
    assert any(e.path == path for e in err.value.errors), err.value.errors


def test_role_names_may_contain_colons() -> None:
    parse_object({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "system:node"}})
    with pytest.raises(ValidationFailed, match="metadata.name"):
        parse_object({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "a/b"}})
