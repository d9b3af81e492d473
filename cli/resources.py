"""Command-line resource arguments, in kubectl's forms.

    pods                 every pod (in the namespace)
    pods web db          two pods by name
    po,deploy            every pod and every deployment
    all                  kubectl's `all`: pods, services, daemonsets, deployments, replicasets, jobs, ...
    pod/web deploy/api   objects by kind/name

Kinds are found by kind, plural, singular or short name through api.registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from api.errors import ValidationFailed
from api.registry import ResourceInfo, lookup
from cli.errors import CliError


# kubectl's `all` category, in its order; the kinds Skiff does not have are skipped.
ALL_CATEGORY = ("pods", "replicationcontrollers", "services", "daemonsets", "deployments", "replicasets",
                "statefulsets", "horizontalpodautoscalers", "cronjobs", "jobs")


@dataclass
class Target:
    info: ResourceInfo
    names: list[str] = field(default_factory=list)   # empty: every object (matching the selectors)


def find_kind(name: str) -> ResourceInfo:
    try:
        return lookup(name)
    except ValidationFailed as exc:
        raise CliError(str(exc)) from None


def _known(name: str) -> bool:
    try:
        lookup(name)
        return True
    except ValidationFailed:
        return False


def parse_targets(args: Sequence[str], *, verb: str = "get") -> list[Target]:
    if not args:
        raise CliError(f'you must specify the type of resource to {verb}. Use "ctl api-resources" for a '
                       f'complete list of supported resources')
    if any("/" in a for a in args):
        if not all("/" in a for a in args):
            raise CliError(f"there is no need to specify a resource type as a separate argument when passing "
                           f"arguments in resource/name form (e.g. 'ctl {verb} resource/<resource_name>' instead of "
                           f"'ctl {verb} resource resource/<resource_name>')")
        targets: dict[str, Target] = {}
        for arg in args:
            kind, _, name = arg.partition("/")
            if not kind or not name:
                raise CliError(f'arguments in resource/name form must have a single resource and name, got "{arg}"')
            info = find_kind(kind)
            targets.setdefault(info.kind, Target(info)).names.append(name)
        return list(targets.values())
    kinds = [k for k in args[0].split(",") if k]
    if not kinds:
        raise CliError(f'no resource type given in "{args[0]}"')
    infos: list[ResourceInfo] = []
    for kind in kinds:
        found = [find_kind(k) for k in ALL_CATEGORY if _known(k)] if kind == "all" else [find_kind(kind)]
        for info in found:
            if info not in infos:
                infos.append(info)
    return [Target(info, list(args[1:])) for info in infos]


def single_target(args: Sequence[str], *, verb: str) -> tuple[ResourceInfo, str]:
    """Exactly one object, `KIND NAME` or `KIND/NAME` (edit, patch)."""
    targets = parse_targets(args, verb=verb)
    if len(targets) != 1 or len(targets[0].names) != 1:
        raise CliError(f"{verb} takes exactly one object: KIND NAME or KIND/NAME")
    return targets[0].info, targets[0].names[0]
