"""Object name rules (DNS-1123), shared by metadata validation and the CLI."""

from __future__ import annotations

import re

_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# The two RFC 1123 rules side by side, alike in shape by design (the `duplicates` tool pairs
# them): their limits and messages are Kubernetes' own (apimachinery's validation).
def check_dns1123_label(name: str) -> str | None:
    """Error message if name is not a DNS-1123 label (namespaces, services), else None."""
    if len(name) > 63:
        return f"a lowercase RFC 1123 label must be no more than 63 characters (got {len(name)})"
    if not _LABEL_RE.match(name):
        return (f"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                f"and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc'), got {name!r}")
    return None


def check_dns1123_subdomain(name: str) -> str | None:
    """Error message if name is not a DNS-1123 subdomain (most object names), else None."""
    if len(name) > 253:
        return f"a lowercase RFC 1123 subdomain must be no more than 253 characters (got {len(name)})"
    if not _SUBDOMAIN_RE.match(name):
        return (f"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                f"and must start and end with an alphanumeric character (e.g. 'example.com'), got {name!r}")
    return None
