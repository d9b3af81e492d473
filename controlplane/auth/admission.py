"""Admission: checks on the object a request is about to write, after authorization said yes.

Authorization (authz.py) decides from the request's attributes alone; admission sees the
object itself. Two admission plugins run, in this order, on every create and update the
API server's Handlers make (Handlers.admission):

1. NodeRestriction (node.py `admit_node_write`): a node may not set labels under
   `node-restriction.kubernetes.io/` on its own Node;
2. Pod Security (podsecurity.py): a pod must meet its namespace's level; a Namespace's
   `pod-security.kubernetes.io/enforce` label must name a level;
3. `resources`, the plugins about a namespace's resources, in order (controlplane/admission/):
   LimitRange (fills default requests and limits, checks bounds), then ResourceQuota (refuses
   what would go over a quota, else charges it; not on dry runs).

Handlers do not know who is calling: the servicer records the caller in `REQUEST_USER`, a
context variable that follows the request's task into the handler (each gRPC call and
each request of a request stream runs in its own task). Writes the API server makes for
itself (built-in namespaces, the default RBAC policy) have no request user.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Awaitable, Callable, Mapping

from api.errors import ValidationFailed
from api.registry import ResourceInfo
from controlplane.auth import podsecurity
from controlplane.auth.authz import Forbidden
from controlplane.auth.identity import UserInfo
from controlplane.auth.node import admit_node_write

REQUEST_USER: ContextVar[UserInfo | None] = ContextVar("skiff_request_user", default=None)


class Admission:
    def __init__(self, namespace: Callable[[str], Awaitable[Mapping[str, Any] | None]],
                 fresh_namespace: Callable[[str], Awaitable[Mapping[str, Any] | None]] | None = None,
                 resources: list[Callable[..., Awaitable[None]]] | None = None):
        """namespace(name): the Namespace object as stored (the watch cache's, else etcd's), or None.
        fresh_namespace(name): the same read from etcd, asked before a refusal, so a namespace
        relabelled a moment ago (the cache not there yet) is judged by its new level."""
        self.namespace = namespace
        self.fresh_namespace = fresh_namespace
        self.resources = list(resources or [])

    async def __call__(self, operation: str, info: ResourceInfo, new: dict[str, Any],
                       old: dict[str, Any] | None, *, dry_run: bool = False) -> None:
        user = REQUEST_USER.get()
        if user is not None:
            admit_node_write(user, info.kind, new, old)
        if info.kind == "Pod":
            await self._pod_security(operation, new, old)
        elif info.kind == "Namespace":
            errors = podsecurity.check_namespace_labels(new)
            if errors:
                raise ValidationFailed(errors, kind="Namespace", name=(new.get("metadata") or {}).get("name", ""))
        for plugin in self.resources:
            await plugin(operation, info, new, old, dry_run=dry_run)

    async def _pod_security(self, operation: str, pod: dict[str, Any], old: dict[str, Any] | None) -> None:
        # As Kubernetes: an update is checked only when it changes the spec (pods' specs are
        # nearly immutable; a label change or a status write must not fail on an old pod).
        if operation == "UPDATE" and old is not None and old.get("spec") == pod.get("spec"):
            return
        name = (pod.get("metadata") or {}).get("namespace") or "default"
        level = podsecurity.namespace_level(await self.namespace(name), name)
        if level == "privileged":
            return
        errors = podsecurity.violations(pod, level)
        if errors and self.fresh_namespace is not None:
            level = podsecurity.namespace_level(await self.fresh_namespace(name), name)
            errors = podsecurity.violations(pod, level) if level != "privileged" else []
        if errors:
            raise Forbidden(podsecurity.refusal(pod, level, errors))
