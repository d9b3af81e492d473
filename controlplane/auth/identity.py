"""The identity of a caller, as the API server's authenticators establish it.

Shaped like Kubernetes' `user.Info`: a user name, the groups it belongs to, and an
optional uid. Authenticators (client certificates, ServiceAccount tokens) produce it;
the authorizers (RBAC, the Node authorizer) and admission read it. Nothing here
authenticates: this module is the contract between the two sides.

Well-known names follow Kubernetes: a node is `system:node:<name>` in group
`system:nodes`; a ServiceAccount is `system:serviceaccount:<ns>:<name>` in groups
`system:serviceaccounts` and `system:serviceaccounts:<ns>`; `system:masters` is the
group that may do everything.
"""

from __future__ import annotations

from dataclasses import dataclass

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
NODES = "system:nodes"
NODE_PREFIX = "system:node:"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS = "system:serviceaccounts"


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    @property
    def node_name(self) -> str | None:
        """The node this identity speaks for, if it is a node's (`system:node:<name>` in `system:nodes`)."""
        if self.name.startswith(NODE_PREFIX) and NODES in self.groups:
            return self.name[len(NODE_PREFIX):]
        return None

    def __str__(self) -> str:
        return f'"{self.name}"'


# The caller of a server started with --insecure: no credentials are checked, and every
# caller is treated as a cluster administrator (Kubernetes' old insecure port did the same).
INSECURE_ADMIN = UserInfo("system:insecure-admin", (MASTERS, AUTHENTICATED))
