"""The Node authorizer and NodeRestriction admission: a node may touch only what its pods need.

A node's agent authenticates as `system:node:<name>` in group `system:nodes`. As in
Kubernetes (plugin/pkg/auth/authorizer/node), it may:

- read every Node (routes to the other nodes' pod CIDRs), and create, update and update
  the status of its own Node only;
- get, create, update and delete its own Lease (`skiff-node-lease/<name>`);
- list and watch pods only with the field selector `spec.nodeName=<name>`; get, delete and
  update the status of pods bound to it;
- get the Secrets, ConfigMaps, PersistentVolumeClaims and ServiceAccounts that a pod bound
  to it refers to, and request a ServiceAccount token for such a pod;
- read Services, Endpoints and EndpointSlices (for a node proxy and DNS), and write Events;
- get a PersistentVolume that a claim its pods use is bound to, or that is pinned to it
  (nodeAffinity), or that does not exist (the agent's local-path sweep asks about its
  own directories, agent/localpath.py).

Anything else gets no opinion here, with the rule that stopped it as the reason (RBAC may
still grant it: Skiff binds nothing to nodes by default, so the request is refused with
that reason). Which node a Secret or ConfigMap belongs to comes from a graph kept up to
date from the pods watch cache's events (`PodGraph`): (resource, namespace, name) → the
nodes whose pods refer to it, so each decision is a dictionary lookup.

NodeRestriction (`admit_node_write`) checks what the authorizer cannot see, the object
written: a node may not set or change labels under `node-restriction.kubernetes.io/` on
its own Node.
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Iterator, Mapping

from api.volumebinding import HOSTNAME_LABEL, volume_allows_node
from controlplane.auth.authz import Attributes, Decision, Forbidden
from controlplane.auth.identity import UserInfo

LEASE_NAMESPACE = "skiff-node-lease"
RESTRICTED_LABEL_PREFIX = "node-restriction.kubernetes.io/"
READ = frozenset({"get", "list", "watch"})
_REFERENCED = {("", "secrets"), ("", "configmaps"), ("", "persistentvolumeclaims"), ("", "serviceaccounts")}
_READ_ANY = {("", "services"), ("", "endpoints"), ("discovery.k8s.io", "endpointslices")}

PodKey = tuple[str, str]            # (namespace, name)
Ref = tuple[str, str, str]          # (resource, namespace, name)


def pod_references(pod: Mapping[str, Any]) -> Iterator[Ref]:
    """Every Secret, ConfigMap, PVC and ServiceAccount a pod refers to."""
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    spec = pod.get("spec") or {}
    yield "serviceaccounts", ns, spec.get("serviceAccountName") or "default"
    for ref in spec.get("imagePullSecrets") or []:
        yield "secrets", ns, ref.get("name") or ""
    for volume in spec.get("volumes") or []:
        if volume.get("secret"):
            yield "secrets", ns, volume["secret"].get("secretName") or ""
        if volume.get("configMap"):
            yield "configmaps", ns, volume["configMap"].get("name") or ""
        if volume.get("persistentVolumeClaim"):
            yield "persistentvolumeclaims", ns, volume["persistentVolumeClaim"].get("claimName") or ""
        for source in (volume.get("projected") or {}).get("sources") or []:
            if source.get("secret"):
                yield "secrets", ns, source["secret"].get("name") or ""
            if source.get("configMap"):
                yield "configmaps", ns, source["configMap"].get("name") or ""
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            if source.get("secretKeyRef"):
                yield "secrets", ns, source["secretKeyRef"].get("name") or ""
            if source.get("configMapKeyRef"):
                yield "configmaps", ns, source["configMapKeyRef"].get("name") or ""
        for env_from in container.get("envFrom") or []:
            if env_from.get("secretRef"):
                yield "secrets", ns, env_from["secretRef"].get("name") or ""
            if env_from.get("configMapRef"):
                yield "configmaps", ns, env_from["configMapRef"].get("name") or ""


def _pod_key(pod: Mapping[str, Any]) -> PodKey:
    meta = pod.get("metadata") or {}
    return meta.get("namespace") or "default", meta.get("name") or ""


class PodGraph:
    """Which node each pod is bound to, and which nodes refer to each object, from pod events."""

    def __init__(self) -> None:
        self.node_of: dict[PodKey, str] = {}
        self._refs_of: dict[PodKey, tuple[str, set[Ref]]] = {}
        self._nodes_of: dict[Ref, collections.Counter[str]] = {}

    def put(self, pod: Mapping[str, Any]) -> None:
        key = _pod_key(pod)
        node = (pod.get("spec") or {}).get("nodeName") or ""
        refs = {r for r in pod_references(pod) if r[2]} if node else set()
        old = self._refs_of.get(key)
        if old is not None and old == (node, refs):
            return
        self.remove(key)
        if not node:
            return
        self.node_of[key] = node
        self._refs_of[key] = (node, refs)
        for ref in refs:
            self._nodes_of.setdefault(ref, collections.Counter())[node] += 1

    def remove(self, key: PodKey) -> None:
        self.node_of.pop(key, None)
        old = self._refs_of.pop(key, None)
        if old is None:
            return
        node, refs = old
        for ref in refs:
            counter = self._nodes_of.get(ref)
            if counter is None:
                continue
            counter[node] -= 1
            if counter[node] <= 0:
                del counter[node]
            if not counter:
                del self._nodes_of[ref]

    def refers(self, node: str, ref: Ref) -> bool:
        counter = self._nodes_of.get(ref)
        return bool(counter) and counter.get(node, 0) > 0   # type: ignore[union-attr]


Lookup = Callable[[str, str, str], "Mapping[str, Any] | None"]   # (plural, namespace, name) -> cached object


class NodeAuthorizer:
    def __init__(self, pods_cache: Any = None, *, lookup: Lookup | None = None):
        """pods_cache: the API server's pods WatchCache (objects, on_event); None: feed `graph`
        yourself (tests). lookup: cached PersistentVolumes and claims (None: no volume is reachable)."""
        self.graph = PodGraph()
        self._lookup = lookup
        self._cache = pods_cache
        self._objects_id = None
        if pods_cache is not None:
            previous: Callable[[Any], None] | None = pods_cache.on_event

            def on_event(event: Any) -> None:
                if previous is not None:
                    previous(event)
                self._on_event(event)
            pods_cache.on_event = on_event

    def _on_event(self, event: Any) -> None:
        if self._objects_id != id(self._cache.objects):
            return   # rebuilt from the objects on the next decision
        if event.type == "DELETED":
            self.graph.remove(_pod_key(event.obj))
        else:
            self.graph.put(event.obj)

    def _sync(self) -> None:
        """After the cache (re)listed — it replaces its objects without events — rebuild."""
        if self._cache is not None and self._objects_id != id(self._cache.objects):
            graph = PodGraph()
            for pod in list(self._cache.objects.values()):
                graph.put(pod)
            self.graph, self._objects_id = graph, id(self._cache.objects)

    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        node = attrs.user.node_name
        if node is None:
            return Decision.NO_OPINION, ""
        self._sync()
        allowed, reason = self._decide(node, attrs)
        return (Decision.ALLOW, "") if allowed else (Decision.NO_OPINION, reason)

    def _decide(self, node: str, a: Attributes) -> tuple[bool, str]:
        verb, what = a.verb, (a.group, a.resource)
        if what == ("", "nodes"):
            if not a.subresource and verb in READ:
                return True, ""
            if a.subresource in ("", "status") and verb in ("create", "update", "patch", "get"):
                if a.name == node:
                    return True, ""
                return False, f'node "{node}" may only write its own Node object, not "{a.name}"'
            return False, f'node "{node}" may not {verb} nodes'
        if what == ("coordination.k8s.io", "leases"):
            if a.namespace == LEASE_NAMESPACE and a.name == node and verb in ("get", "create", "update", "patch",
                                                                                  "delete"):
                return True, ""
            return False, f'node "{node}" may only use its own Lease "{LEASE_NAMESPACE}/{node}"'
        if what == ("", "pods"):
            return self._pods(node, a)
        if what == ("", "events") and verb in ("create", "update", "patch"):
            return True, ""
        if what in _READ_ANY and verb in READ and not a.subresource:
            return True, ""
        if what == ("", "persistentvolumes") and verb == "get" and not a.subresource:
            if self._volume_reachable(node, a.name):
                return True, ""
            return False, (f"no relationship found between node '{node}' and this object (no claim its pods "
                           f"use is bound to persistentvolume \"{a.name}\", nor is it pinned to the node)")
        if what in _REFERENCED:
            if a.subresource == "token" and a.resource == "serviceaccounts" and verb == "create":
                pass   # the pod the token is bound to is checked by the TokenRequest verb (check_token_pod)
            elif a.subresource or verb != "get":
                return False, f'node "{node}" may only get {a.resource} that its pods use'
            if self.graph.refers(node, (a.resource, a.namespace, a.name)):
                return True, ""
            return False, (f"no relationship found between node '{node}' and this object "
                           f"(no pod bound to it uses {a.resource} \"{a.namespace}/{a.name}\")")
        return False, (f'node "{node}" may not {verb} {a.full_resource}{"." + a.group if a.group else ""}: the Node '
                       f'authorizer allows a node only its own Node and Lease, its pods, and what they use')

    def _volume_reachable(self, node: str, name: str) -> bool:
        if self._lookup is None:
            return False
        volume = self._lookup("persistentvolumes", "", name)
        if volume is None:
            return True     # nothing to read: the answer is NotFound
        spec = volume.get("spec") or {}
        if (spec.get("nodeAffinity") or {}).get("required") and \
                volume_allows_node(volume, {HOSTNAME_LABEL: node}, node):
            return True
        ref = spec.get("claimRef") or {}
        claim_ref = ("persistentvolumeclaims", ref.get("namespace") or "", ref.get("name") or "")
        if not self.graph.refers(node, claim_ref):
            return False
        claim = self._lookup(*claim_ref)
        return claim is not None and (claim.get("spec") or {}).get("volumeName") == name

    def _pods(self, node: str, a: Attributes) -> tuple[bool, str]:
        if a.verb in ("list", "watch") and not a.subresource:
            if f"spec.nodeName={node}" in a.field_selector.replace(" ", "").split(","):
                return True, ""
            return False, f'node "{node}" may only {a.verb} pods with the field selector spec.nodeName={node}'
        own = ((a.verb == "get" and a.subresource in ("", "status"))
               or (a.verb == "delete" and not a.subresource)
               or (a.verb in ("update", "patch") and a.subresource == "status"))
        if not own:
            return False, f'node "{node}" may not {a.verb} {a.full_resource}'
        bound = self.graph.node_of.get((a.namespace, a.name))
        if bound == node:
            return True, ""
        where = f'bound to node "{bound}"' if bound else "not bound to it"
        return False, f'node "{node}" can only {a.verb} pods bound to it; pod "{a.namespace}/{a.name}" is {where}'

    def check_token_pod(self, user: UserInfo, pod: Mapping[str, Any]) -> None:
        """A node may request tokens only for its own pods (TokenRequest's bound pod)."""
        node = user.node_name
        if node is None:
            return
        bound = (pod.get("spec") or {}).get("nodeName")
        if bound != node:
            ns, name = _pod_key(pod)
            raise Forbidden(f'User "{user.name}" cannot create a token bound to pod "{ns}/{name}": '
                            f'node "{node}" can only request tokens for pods bound to it')


def admit_node_write(user: UserInfo, kind: str, new: Mapping[str, Any], old: Mapping[str, Any] | None) -> None:
    """NodeRestriction: a node may not set or change node-restriction.kubernetes.io/ labels on its Node."""
    node = user.node_name
    if node is None or kind != "Node":
        return
    new_labels = (new.get("metadata") or {}).get("labels") or {}
    old_labels = ((old or {}).get("metadata") or {}).get("labels") or {}
    for key in sorted(set(new_labels) | set(old_labels)):
        if key.startswith(RESTRICTED_LABEL_PREFIX) and new_labels.get(key) != old_labels.get(key):
            raise Forbidden(f'node "{node}" is not allowed to modify labels: {key} (labels under '
                            f'{RESTRICTED_LABEL_PREFIX} are set by administrators only; NodeRestriction)')
