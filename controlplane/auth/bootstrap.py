"""The default RBAC policy, applied by every API server at start (Kubernetes' bootstrap policy).

ClusterRoles for people — `cluster-admin` (everything), `admin` (everything in a namespace,
including its Roles and RoleBindings), `edit` (read/write workloads, Secrets, exec; no
roles), `view` (read, but not Secrets) — and for Skiff's own components, each bound to the
identity that component authenticates as:

| ClusterRole | bound to |
|---|---|
| cluster-admin | group `system:masters` |
| system:basic-user | group `system:authenticated` (access reviews of oneself) |
| system:kube-scheduler | user `system:kube-scheduler` |
| system:kube-controller-manager | user `system:kube-controller-manager` |
| system:node-proxier | user `system:kube-proxy` |

Nodes get no binding: the Node authorizer (node.py) decides for them. Images (`images` in
API group `skiff.io`: `ctl image load/pull/rm/ls`) are in no default role but
cluster-admin: loading an image replaces a tag on every node.

As in Kubernetes, a default object carrying the annotation
`rbac.authorization.kubernetes.io/autoupdate: "false"` is left as the user changed it;
otherwise it is put back to the default at every start.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from api.rbac import API_VERSION

log = logging.getLogger(__name__)

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
READ = ["get", "list", "watch"]
WRITE = ["create", "update", "patch", "delete", "deletecollection"]
SCHEDULER_USER = "system:kube-scheduler"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
PROXY_USER = "system:kube-proxy"
SKIFF_GROUP = "skiff.io"


def rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


_VIEW = [
    rule([""], ["pods", "pods/log", "pods/status", "services", "services/status", "configmaps", "endpoints",
                "persistentvolumeclaims", "serviceaccounts", "replicationcontrollers", "events",
                "namespaces", "namespaces/status", "limitranges", "resourcequotas"], READ),
    rule(["apps"], ["deployments", "deployments/status", "deployments/scale", "replicasets",
                    "replicasets/status", "replicasets/scale", "daemonsets", "daemonsets/status",
                    "statefulsets", "controllerrevisions"], READ),
    rule(["batch"], ["jobs", "jobs/status", "cronjobs", "cronjobs/status"], READ),
    rule(["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"], READ),
    rule(["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"], READ),
    rule(["discovery.k8s.io"], ["endpointslices"], READ),
    rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], READ),
    rule(["coordination.k8s.io"], ["leases"], READ),
    rule(["metrics.k8s.io"], ["pods", "nodes"], READ),
]
_EDIT = [
    rule([""], ["pods", "pods/exec", "pods/attach", "pods/portforward", "services", "configmaps", "secrets",
                "endpoints", "persistentvolumeclaims", "serviceaccounts", "replicationcontrollers"], WRITE),
    rule([""], ["secrets"], READ),
    rule([""], ["serviceaccounts/token", "pods/eviction"], ["create"]),
    rule(["policy"], ["poddisruptionbudgets"], WRITE),
    rule(["autoscaling"], ["horizontalpodautoscalers"], WRITE),
    rule(["apps"], ["deployments", "deployments/scale", "replicasets", "replicasets/scale", "daemonsets",
                    "statefulsets"], WRITE),
    rule(["batch"], ["jobs", "cronjobs"], WRITE),
    rule(["discovery.k8s.io"], ["endpointslices"], WRITE),
    rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], WRITE),
    rule(["coordination.k8s.io"], ["leases"], WRITE),
]
_ADMIN = [
    rule(["rbac.authorization.k8s.io"], ["roles", "rolebindings"], READ + WRITE),
    rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
]

CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [rule(["*"], ["*"], ["*"])],
    "admin": _ADMIN + _EDIT + _VIEW,
    "edit": _EDIT + _VIEW,
    "view": _VIEW,
    "system:basic-user": [rule(["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                               ["create"])],
    "system:kube-scheduler": [
        rule([""], ["pods", "nodes", "namespaces", "services", "persistentvolumeclaims", "persistentvolumes"], READ),
        rule(["storage.k8s.io"], ["storageclasses"], READ),
        rule([""], ["pods/binding"], ["create"]),
        rule([""], ["pods/status"], ["update", "patch"]),
        rule([""], ["pods"], ["delete"]),   # preemption
        rule([""], ["events"], ["create", "update", "patch"]),
        rule(["coordination.k8s.io"], ["leases"], READ + ["create", "update"]),
    ],
    # One identity for every controller (Kubernetes can give each its own ServiceAccount):
    # the namespace controller and the garbage collector delete any kind, the others write
    # workloads, pods, nodes' taints and status, and ServiceAccounts.
    "system:kube-controller-manager": [
        rule(["*"], ["*"], READ + ["delete", "deletecollection"]),
        rule(["", "apps", "batch", "discovery.k8s.io", "coordination.k8s.io"], ["*"],
             ["create", "update", "patch"]),
    ],
    "system:node-proxier": [
        rule([""], ["services", "endpoints", "nodes"], READ),
        rule(["discovery.k8s.io"], ["endpointslices"], READ),
        rule([""], ["events"], ["create", "update", "patch"]),
    ],
}

CLUSTER_ROLE_BINDINGS: dict[str, tuple[str, list[dict[str, str]]]] = {
    "cluster-admin": ("cluster-admin", [{"kind": "Group", "name": "system:masters"}]),
    "system:basic-user": ("system:basic-user", [{"kind": "Group", "name": "system:authenticated"}]),
    "system:kube-scheduler": ("system:kube-scheduler", [{"kind": "User", "name": SCHEDULER_USER}]),
    "system:kube-controller-manager": ("system:kube-controller-manager",
                                       [{"kind": "User", "name": CONTROLLER_MANAGER_USER}]),
    "system:node-proxier": ("system:node-proxier", [{"kind": "User", "name": PROXY_USER}]),
}


def _meta(name: str) -> dict[str, Any]:
    return {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {AUTOUPDATE: "true"}}


def default_objects() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, rules in CLUSTER_ROLES.items():
        out.append({"apiVersion": API_VERSION, "kind": "ClusterRole", "metadata": _meta(name), "rules": rules})
    for name, (role, subjects) in CLUSTER_ROLE_BINDINGS.items():
        out.append({"apiVersion": API_VERSION, "kind": "ClusterRoleBinding", "metadata": _meta(name),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                    "subjects": [{**s, "apiGroup": "rbac.authorization.k8s.io"} for s in subjects]})
    return out


async def ensure_default_policy(*, get: Callable[[str, str], Awaitable[dict[str, Any] | None]],
                                apply: Callable[[dict[str, Any]], Awaitable[Any]]) -> None:
    """Apply each default object unless the stored one opted out of updates.
    get(plural, name) returns the stored object or None; apply(obj) is the API's apply."""
    for obj in default_objects():
        plural = "clusterroles" if obj["kind"] == "ClusterRole" else "clusterrolebindings"
        current = await get(plural, obj["metadata"]["name"])
        annotations = ((current or {}).get("metadata") or {}).get("annotations") or {}
        if current is not None and annotations.get(AUTOUPDATE) == "false":
            log.info("%s %s: autoupdate is false, left as it is", obj["kind"], obj["metadata"]["name"])
            continue
        await apply(obj)
