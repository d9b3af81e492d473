"""RBAC (rbac.authorization.k8s.io/v1): Role, ClusterRole, RoleBinding, ClusterRoleBinding.

A Role (in a namespace) or ClusterRole (cluster-wide) is a list of PolicyRules: which
verbs on which resources of which API groups, optionally only for some resourceNames
(or, in a ClusterRole, which nonResourceURLs). A RoleBinding grants a Role or a
ClusterRole's rules to subjects (users, groups, ServiceAccounts) inside its own
namespace; a ClusterRoleBinding grants a ClusterRole everywhere. `*` matches any verb,
resource or group. The authorizer that reads these is controlplane/auth/rbac.py.

Names may contain `:` (`system:node`), as Kubernetes' path-segment rule allows.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from api.base import ApiModel
from api.errors import FieldError, required, unsupported
from api.registry import ResourceInfo, register
from api.resource import Resource

GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"
SUBJECT_KINDS = ("User", "Group", "ServiceAccount")


def check_path_segment_name(name: str) -> str | None:
    """Kubernetes' ValidatePathSegmentName: anything but `.`, `..`, `/` and `%`."""
    if name in (".", ".."):
        return f'may not be "{name}"'
    for bad in ("/", "%"):
        if bad in name:
            return f"may not contain '{bad}'"
    if len(name) > 253:
        return "must be no more than 253 characters"
    return None


class PolicyRule(ApiModel):
    verbs: list[str] = Field(description="Verbs this rule allows: get, list, watch, create, update, patch, "
                                         "delete, deletecollection, or * for all.")
    api_groups: Optional[list[str]] = Field(default=None, description='API groups of the resources; "" is the '
                                                                      'core group, * any group.')
    resources: Optional[list[str]] = Field(default=None, description="Resources (plural names), with "
                                                                     "subresources as pods/exec; * for all.")
    resource_names: Optional[list[str]] = Field(default=None, description="Only these object names "
                                                                          "(empty: every object).")
    non_resource_urls: Optional[list[str]] = Field(default=None, alias="nonResourceURLs",
                                                   description="Non-resource paths (ClusterRoles only).")


class Subject(ApiModel):
    kind: str = Field(description="User, Group or ServiceAccount.")
    name: str
    namespace: Optional[str] = Field(default=None, description="The ServiceAccount's namespace.")
    api_group: Optional[str] = None


class RoleRef(ApiModel):
    api_group: str = GROUP
    kind: str = Field(description="Role or ClusterRole.")
    name: str


class AggregationRule(ApiModel):
    cluster_role_selectors: Optional[list[dict[str, Any]]] = None


def _check_rules(rules: list[PolicyRule] | None, *, cluster: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, rule in enumerate(rules or []):
        path = f"rules[{i}]"
        if not rule.verbs:
            errors.append(required(f"{path}.verbs", "verbs must contain at least one value"))
        if rule.non_resource_urls:
            if not cluster:
                errors.append(FieldError(f"{path}.nonResourceURLs",
                                         "Invalid value: namespaced rules cannot apply to non-resource URLs"))
            if rule.resources or rule.api_groups:
                errors.append(FieldError(f"{path}.nonResourceURLs",
                                         "Invalid value: rules cannot apply to both regular resources and "
                                         "non-resource URLs"))
            continue
        if not rule.resources:
            errors.append(required(f"{path}.resources", "resource rules must supply at least one resource"))
        if not rule.api_groups:
            errors.append(required(f"{path}.apiGroups", 'resource rules must supply at least one api group '
                                                        '("" is the core group)'))
    return errors


class Role(Resource):
    api_version: Literal["rbac.authorization.k8s.io/v1"] = API_VERSION  # type: ignore[assignment]
    kind: Literal["Role"] = "Role"
    rules: Optional[list[PolicyRule]] = Field(default=None, description="What the role allows.")

    def validate_semantics(self) -> list[FieldError]:
        return _check_rules(self.rules, cluster=False)


class ClusterRole(Resource):
    api_version: Literal["rbac.authorization.k8s.io/v1"] = API_VERSION  # type: ignore[assignment]
    kind: Literal["ClusterRole"] = "ClusterRole"
    rules: Optional[list[PolicyRule]] = Field(default=None, description="What the role allows.")
    aggregation_rule: Optional[AggregationRule] = Field(default=None, description="Accepted; not evaluated "
                                                                                  "by Skiff.")

    def validate_semantics(self) -> list[FieldError]:
        return _check_rules(self.rules, cluster=True)


def _check_binding(subjects: list[Subject] | None, role_ref: RoleRef, *, cluster: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    allowed = ("ClusterRole",) if cluster else ("Role", "ClusterRole")
    if role_ref.kind not in allowed:
        errors.append(unsupported("roleRef.kind", role_ref.kind, allowed))
    if role_ref.api_group != GROUP:
        errors.append(unsupported("roleRef.apiGroup", role_ref.api_group, [GROUP]))
    if not role_ref.name:
        errors.append(required("roleRef.name"))
    elif msg := check_path_segment_name(role_ref.name):
        errors.append(FieldError("roleRef.name", f"Invalid value: {role_ref.name!r}: {msg}"))
    for i, subject in enumerate(subjects or []):
        path = f"subjects[{i}]"
        if subject.kind not in SUBJECT_KINDS:
            errors.append(unsupported(f"{path}.kind", subject.kind, SUBJECT_KINDS))
        if not subject.name:
            errors.append(required(f"{path}.name"))
        if subject.kind == "ServiceAccount":
            if subject.api_group:
                errors.append(unsupported(f"{path}.apiGroup", subject.api_group, [""]))
            if cluster and not subject.namespace:
                errors.append(required(f"{path}.namespace"))
        elif subject.kind in ("User", "Group") and subject.api_group not in (None, GROUP):
            errors.append(unsupported(f"{path}.apiGroup", subject.api_group, [GROUP]))
    return errors


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class RoleBinding(Resource):
    api_version: Literal["rbac.authorization.k8s.io/v1"] = API_VERSION  # type: ignore[assignment]
    kind: Literal["RoleBinding"] = "RoleBinding"
    subjects: Optional[list[Subject]] = Field(default=None, description="Who gets the role's rules.")
    role_ref: RoleRef = Field(description="The Role (in this namespace) or ClusterRole granted, here only.")

    def validate_semantics(self) -> list[FieldError]:
        return _check_binding(self.subjects, self.role_ref, cluster=False)


class ClusterRoleBinding(Resource):
    api_version: Literal["rbac.authorization.k8s.io/v1"] = API_VERSION  # type: ignore[assignment]
    kind: Literal["ClusterRoleBinding"] = "ClusterRoleBinding"
    subjects: Optional[list[Subject]] = Field(default=None, description="Who gets the role's rules.")
    role_ref: RoleRef = Field(description="The ClusterRole granted, in every namespace.")

    def validate_semantics(self) -> list[FieldError]:
        return _check_binding(self.subjects, self.role_ref, cluster=True)


for _model, _plural, _namespaced in ((Role, "roles", True), (ClusterRole, "clusterroles", False),
                                     (RoleBinding, "rolebindings", True),
                                     (ClusterRoleBinding, "clusterrolebindings", False)):
    register(ResourceInfo(kind=_model.__name__, plural=_plural, model=_model, group=GROUP, namespaced=_namespaced,
                          has_status=False, spec_fields=(), name_rule=check_path_segment_name))
