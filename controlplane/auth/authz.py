"""Authorization: what a request asks to do, who decides, and how a refusal reads.

Every verb of the API server becomes an `Attributes` record — user, verb, API group,
resource (with its subresource), namespace and name — as Kubernetes' authorizer.Attributes.
Authorizers answer ALLOW, DENY or NO_OPINION; `Chain` asks them in order and the first
that does not abstain decides (Kubernetes' union authorizer with `--authorization-mode=
Node,RBAC`). Nobody says yes: the request is refused with PERMISSION_DENIED, worded as
Kubernetes words it:

    deployments.apps is forbidden: User "alice" cannot create resource "deployments" in API group "apps" in the
    namespace "default"

followed, when an authorizer gave one, by its reason (the Node authorizer names the rule).
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Protocol


from api.apierrors import Forbidden
from controlplane.auth.identity import UserInfo


class Decision(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    NO_OPINION = "no-opinion"


class Attributes(NamedTuple):
    """A NamedTuple, not a dataclass: one is built per request, and a tuple builds fastest."""
    user: UserInfo
    verb: str                    # get list watch create update patch delete deletecollection (or impersonate, ...)
    resource: str                # plural: pods, deployments, images
    group: str = ""              # "" is the core group
    subresource: str = ""        # status, binding, exec, log, token
    namespace: str = ""          # "" for cluster-scoped resources and cluster-wide lists
    name: str = ""
    # list/watch only: the field selector, so the Node authorizer can see spec.nodeName=<node>.
    field_selector: str = ""

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


class Authorizer(Protocol):
    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        """The decision, and a reason (shown on a refusal; may be empty)."""
        ...


def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """Kubernetes' wording of a refusal (k8s.io/apiserver/pkg/endpoints/handlers/responsewriters)."""
    resource = f'{attrs.full_resource}{"." + attrs.group if attrs.group else ""}'
    prefix = f'{resource} "{attrs.name}" is forbidden: ' if attrs.name else f"{resource} is forbidden: "
    where = f' in the namespace "{attrs.namespace}"' if attrs.namespace else " at the cluster scope"
    text = (f'{prefix}User "{attrs.user.name}" cannot {attrs.verb} resource "{attrs.full_resource}" '
            f'in API group "{attrs.group}"{where}')
    return f"{text}: {reason}" if reason else text


class Chain:
    """Ask each authorizer in turn; the first ALLOW or DENY decides; nobody: refused."""

    def __init__(self, *authorizers: Authorizer):
        self.authorizers = authorizers

    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        reasons = []
        for authorizer in self.authorizers:
            decision, reason = authorizer.authorize(attrs)
            if decision is not Decision.NO_OPINION:
                return decision, reason
            if reason:
                reasons.append(reason)
        return Decision.DENY, "; ".join(reasons)

    def check(self, attrs: Attributes) -> None:
        """Raise Forbidden unless the request is allowed."""
        decision, reason = self.authorize(attrs)
        if decision is not Decision.ALLOW:
            raise Forbidden(forbidden_message(attrs, reason))
