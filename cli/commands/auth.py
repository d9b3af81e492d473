"""`ctl auth can-i`: may I (or someone else) do this? As `kubectl auth can-i`.

    ctl auth can-i create deployments -n team         yes
    ctl auth can-i get pods/log                        no
    ctl auth can-i delete pods web --as alice          (needs permission to impersonate alice)
    ctl auth can-i get nodes --as system:node:n1 --as-group system:nodes

Prints `yes` (exit 0) or `no` (exit 1), with the authorizer's reason after ` - ` when it
gave one. RESOURCE is a plural, kind or short name, optionally `.group` and
`/subresource` (`deployments.apps`, `pods/exec`); a name the server does not know is
asked about as written, after a warning, as kubectl does. `--as`/`--as-group` ask the API
server for a review of that identity (SubjectAccessReview), which it answers only for
callers allowed to impersonate it.
"""

from __future__ import annotations

import click

from api.errors import ValidationFailed
from api.registry import lookup
from cli.errors import print_error
from cli.session import global_options, session
from controlplane.client import Client


def resolve(resource: str) -> tuple[str, str, str]:
    """`deploy/scale` → ("deployments", "scale", "apps"); an unknown name is kept as written."""
    name, _, subresource = resource.partition("/")
    if name == "*":
        return "*", subresource, "*"
    try:
        info = lookup(name)
        return info.plural, subresource, info.group
    except ValidationFailed:
        plural, _, group = name.partition(".")
        print_error(f"Warning: the server doesn't have a resource type '{plural}'")
        return plural, subresource, group


@click.group()
def auth() -> None:
    """Inspect authorization."""


@auth.command(name="can-i")
@click.argument("verb")
@click.argument("resource")
@click.argument("name", required=False, default="")
@click.option("-A", "--all-namespaces", is_flag=True, help="Ask about every namespace (cluster-wide).")
@click.option("--as", "as_user", default="", metavar="USER", help="Ask about this user (impersonation).")
@click.option("--as-group", "as_groups", multiple=True, metavar="GROUP",
              help="Ask about a member of this group (repeatable; impersonation).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; answer with the exit code only.")
@global_options
def can_i(verb: str, resource: str, name: str, all_namespaces: bool, as_user: str, as_groups: tuple[str, ...],
          quiet: bool) -> int:
    """Check whether an action is allowed: exit 0 and `yes`, or exit 1 and `no`."""
    plural, subresource, group = resolve(resource)
    s = session()
    namespace = "" if all_namespaces else s.namespace

    async def ask(client: Client) -> dict:
        return await client.access_review(verb, f"{plural}/{subresource}" if subresource else plural, group=group,
                                          namespace=namespace, name=name, user=as_user, groups=list(as_groups))
    review = s.run(ask)
    if not quiet:
        if review["allowed"]:
            click.echo("yes")
        else:
            click.echo("no" + (f" - {review['reason']}" if review["reason"] else ""))
    return 0 if review["allowed"] else 1
