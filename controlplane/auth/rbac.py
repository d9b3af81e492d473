"""The RBAC authorizer: Roles and ClusterRoles granted by RoleBindings and ClusterRoleBindings.

It reads the four kinds from the API server's watch caches (no etcd read per request)
and keeps them as indexes keyed by subject:

    cluster[subject]               the rules of every ClusterRoleBinding naming the subject
    namespaced[(ns, subject)]      the rules of every RoleBinding in ns naming it

A subject is `User:<name>` or `Group:<name>`; a ServiceAccount subject is indexed as the
user it authenticates as (`User:system:serviceaccount:<ns>:<name>`). Each role is compiled
once into a table (apiGroup, resource, verb) → every name, or a set of resourceNames, and
each index entry lists the tables of the roles bound to that subject. A decision looks up
the caller's user name and each of its groups and asks each of their roles' tables — a
dictionary lookup or two each: O(the caller's bindings), never a scan of all roles; the
tables found for a (user, namespace) are kept until the next rebuild. The
indexes are rebuilt when any of the four kinds changes (each cache's revision is the
stamp; about 0.1 s for 4,000 bindings, bench/authz.py); RBAC objects change rarely,
requests are many.

Matching follows Kubernetes (pkg/apis/rbac/v1/evaluation_helpers.go): `*` matches any
verb, group or resource; `pods/*` any subresource of pods and `*/status` a subresource of
any resource; a rule with resourceNames matches only requests naming one of them (so
never a list or a create).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Protocol

from controlplane.auth.authz import Attributes, Decision
from controlplane.auth.identity import SERVICE_ACCOUNT_PREFIX, UserInfo

ALL = None   # a table entry that allows every name
KINDS = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
TABLES_CACHE_SIZE = 4096   # (user, namespace) pairs whose tables RBACAuthorizer keeps


class ObjectCache(Protocol):
    """What RBAC reads of a watch cache (controlplane/storage/watch_cache.py): its objects,
    and a revision that moves whenever they change."""
    objects: Mapping[Any, dict[str, Any]]
    revision: int


class RuleTable:
    """One role's PolicyRules, as (group, resource, verb) → ALL or a set of names; compiled
    once per role, shared by every binding to it. Which wildcards occur is noted, so a
    role without any (most) answers with one or two lookups."""

    __slots__ = ("entries", "groups", "verbs", "any_resource", "sub_wildcards")

    def __init__(self, rules: Iterable[Mapping[str, Any]] = ()) -> None:
        self.entries: dict[tuple[str, str, str], set[str] | None] = {}
        self.groups: tuple[str, ...] = ()
        self.verbs: tuple[str, ...] = ()
        self.any_resource = False
        self.sub_wildcards = False
        for rule in rules:
            self.add(rule)

    def add(self, rule: Mapping[str, Any]) -> None:
        names = rule.get("resourceNames") or []
        for group in rule.get("apiGroups") or ():
            if group == "*":
                self.groups = ("*",)
            for resource in rule.get("resources") or ():
                if resource == "*":
                    self.any_resource = True
                elif resource.startswith("*/") or resource.endswith("/*"):
                    self.sub_wildcards = True
                for verb in rule.get("verbs") or ():
                    if verb == "*":
                        self.verbs = ("*",)
                    key = (group, resource, verb)
                    if not names:
                        self.entries[key] = ALL
                    elif key not in self.entries:
                        self.entries[key] = set(names)
                    elif self.entries[key] is not ALL:
                        self.entries[key].update(names)   # type: ignore[union-attr]

    def allows(self, attrs: Attributes) -> bool:
        entries = self.entries
        if attrs.subresource:
            resources: tuple[str, ...] = (f"{attrs.resource}/{attrs.subresource}",)
            if self.sub_wildcards:
                resources += (f"{attrs.resource}/*", f"*/{attrs.subresource}")
        else:
            resources = (attrs.resource,)
        if self.any_resource:
            resources += ("*",)
        for group in (attrs.group, *self.groups):
            for resource in resources:
                for verb in (attrs.verb, *self.verbs):
                    key = (group, resource, verb)
                    if key in entries:
                        names = entries[key]
                        if names is ALL or (attrs.name and attrs.name in names):
                            return True
        return False


def subject_keys(user: UserInfo) -> list[str]:
    return [f"User:{user.name}", *(f"Group:{g}" for g in user.groups)]


def _subject_key(subject: Mapping[str, Any], binding_namespace: str) -> str | None:
    kind, name = subject.get("kind"), subject.get("name") or ""
    if kind == "User":
        return f"User:{name}"
    if kind == "Group":
        return f"Group:{name}"
    if kind == "ServiceAccount":
        return f"User:{SERVICE_ACCOUNT_PREFIX}{subject.get('namespace') or binding_namespace}:{name}"
    return None


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


class RBACAuthorizer:
    def __init__(self, caches: Mapping[str, ObjectCache]):
        """caches: the watch caches (or anything with `objects` and `revision`) of the four kinds,
        by plural."""
        self.caches = [caches[kind] for kind in KINDS]
        self._stamp: tuple[int, ...] | None = None
        self.cluster: dict[str, list[RuleTable]] = {}
        self.namespaced: dict[tuple[str, str], list[RuleTable]] = {}
        self._tables: dict[tuple[UserInfo, str], list[RuleTable]] = {}

    # -- the indexes ---------------------------------------------------------------

    def _current(self) -> None:
        roles, cluster_roles, bindings, cluster_bindings = self.caches
        stamp = (roles.revision, cluster_roles.revision, bindings.revision, cluster_bindings.revision)
        if stamp != self._stamp:
            self._rebuild()
            self._stamp = stamp

    def _rebuild(self) -> None:
        """Compile each role once, then file each binding's role under each of its subjects:
        O(rules + bindings × subjects)."""
        roles_cache, cluster_roles_cache, bindings_cache, cluster_bindings_cache = self.caches
        roles = {(_meta(o).get("namespace"), _meta(o).get("name")): RuleTable(o.get("rules") or [])
                 for o in list(roles_cache.objects.values())}
        cluster_roles = {_meta(o).get("name"): RuleTable(o.get("rules") or [])
                         for o in list(cluster_roles_cache.objects.values())}
        cluster: dict[str, list[RuleTable]] = {}
        namespaced: dict[tuple[str, str], list[RuleTable]] = {}

        def grant(index: dict, scope: str | None, subjects: Iterable[Mapping[str, Any]], namespace: str,
                  table: RuleTable | None) -> None:
            if table is None or not table.entries:
                return
            for subject in subjects:
                key = _subject_key(subject, namespace)
                if key is None:
                    continue
                tables = index.setdefault(key if scope is None else (scope, key), [])
                if not any(t is table for t in tables):
                    tables.append(table)

        for binding in list(cluster_bindings_cache.objects.values()):
            ref = binding.get("roleRef") or {}
            if ref.get("kind") == "ClusterRole":
                grant(cluster, None, binding.get("subjects") or [], "", cluster_roles.get(ref.get("name")))
        for binding in list(bindings_cache.objects.values()):
            ns = _meta(binding).get("namespace") or ""
            ref = binding.get("roleRef") or {}
            table = cluster_roles.get(ref.get("name")) if ref.get("kind") == "ClusterRole" \
                else roles.get((ns, ref.get("name")))
            grant(namespaced, ns, binding.get("subjects") or [], ns, table)
        self.cluster, self.namespaced = cluster, namespaced
        self._tables = {}

    def tables_for(self, user: UserInfo, namespace: str) -> list[RuleTable]:
        """Every table bound to the user's name or groups, cluster-wide and in `namespace`: what a
        decision asks. Kept per (user, namespace) until the indexes are rebuilt (they are replaced
        then, never changed in place), at most TABLES_CACHE_SIZE of them."""
        key = (user, namespace)
        tables = self._tables.get(key)
        if tables is None:
            tables = []
            for subject in subject_keys(user):
                for table in (*self.cluster.get(subject, ()),
                              *(self.namespaced.get((namespace, subject), ()) if namespace else ())):
                    if not any(t is table for t in tables):
                        tables.append(table)
            if len(self._tables) >= TABLES_CACHE_SIZE:
                self._tables.clear()
            self._tables[key] = tables
        return tables

    # -- deciding --------------------------------------------------------------------

    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        self._current()
        for table in self.tables_for(attrs.user, attrs.namespace):
            if table.allows(attrs):
                return Decision.ALLOW, ""
        return Decision.NO_OPINION, ""

    def rules_for(self, user: UserInfo, namespace: str) -> list[tuple[str, str, str, str]]:
        """What the user may do in a namespace (or cluster-wide with ""): (verb, group, resource,
        names) rows, for `ctl auth can-i --list`."""
        self._current()
        rows = set()
        for key in subject_keys(user):
            tables = [*self.cluster.get(key, ()), *(self.namespaced.get((namespace, key), ()) if namespace else ())]
            for table in tables:
                for (group, resource, verb), names in table.entries.items():
                    rows.add((verb, group, resource, ",".join(sorted(names)) if names else ""))
        return sorted(rows)


class PrivilegedGroups:
    """`system:masters` may do everything, whatever RBAC says (Kubernetes' privileged group
    authorizer): a cluster administrator cannot lock themselves out by editing roles."""

    def __init__(self, *groups: str):
        self.groups = frozenset(groups)

    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        if self.groups.intersection(attrs.user.groups):
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, ""
