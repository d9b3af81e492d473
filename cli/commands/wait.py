"""`ctl wait`: block until objects reach a condition, a value, or are deleted.

    ctl wait --for=condition=Ready pod/busybox1 --timeout=60s
    ctl wait --for=condition=Available=false deploy/web
    ctl wait --for=jsonpath='{.status.phase}'=Running pod -l app=web
    ctl wait --for=delete pod/busybox1 --timeout=60s

Each object is followed with a watch (no polling) until the condition holds, then
`pod/busybox1 condition met` (`deleted` for --for=delete) is printed. Past --timeout
(default 30s; kubectl's units: 90s, 2m, 1h) the command fails with
`error: timed out waiting for the condition on pods/busybox1`. A missing object is an
error, except for --for=delete, which it already satisfies.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import click

from api.duration import parse_duration
from api.registry import ResourceInfo
from cli.changes import resolve
from cli.errors import CliError
from cli.printers import jsonpath
from cli.resources import parse_targets
from cli.session import global_options, session
from controlplane.client import Client, NotFound


@dataclass(frozen=True)
class Condition:
    kind: str                     # condition, jsonpath, delete
    name: str = ""                # the condition type, or the JSONPath
    value: str | None = None      # wanted status / value (None: the condition's "True", jsonpath: present)

    @classmethod
    def parse(cls, text: str) -> "Condition":
        if text == "delete":
            return cls("delete")
        if text.startswith("condition="):
            name, sep, value = text[len("condition="):].partition("=")
            if not name:
                raise CliError(f"--for: give condition=NAME[=VALUE], got {text!r}")
            return cls("condition", name, value if sep else "True")
        if text.startswith("jsonpath="):
            expr = text[len("jsonpath="):]
            match = re.fullmatch(r"'?(\{.*\})'?(?:=(.*))?", expr)
            if not match:
                raise CliError(f"--for: give jsonpath='{{.path}}'=VALUE, got {text!r}")
            return cls("jsonpath", match.group(1)[1:-1], match.group(2))
        raise CliError(f"unrecognized condition: {text!r}; use condition=NAME[=VALUE], jsonpath='{{...}}'=VALUE "
                       f"or delete")

    def met(self, obj: dict[str, Any]) -> bool:
        if self.kind == "condition":
            for c in (obj.get("status") or {}).get("conditions") or []:
                if str(c.get("type", "")).lower() == self.name.lower():
                    return str(c.get("status", "")).lower() == str(self.value).lower()
            return False
        if self.kind == "jsonpath":
            found = jsonpath.evaluate(self.name, obj)
            if self.value is None:
                return bool(found)
            return any(jsonpath._text(v) == self.value for v in found)
        return False


def parse_timeout(text: str) -> float:
    try:
        seconds = float(text) if re.fullmatch(r"-?\d+(\.\d+)?", text) else parse_duration(text)
    except (ValueError, TypeError):
        raise CliError(f'invalid --timeout "{text}": give a duration like 30s, 5m or 1h') from None
    return seconds if seconds >= 0 else 7 * 24 * 3600.0   # negative: a week, kubectl's "forever"


async def wait_one(client: Client, info: ResourceInfo, name: str, namespace: str, cond: Condition) -> str:
    """Wait until `cond` holds for one object; the word to print. The object is read, then
    watched from the version read, so no change between the two is missed."""
    try:
        obj = await client.get(info.kind, name, namespace)
    except NotFound:
        if cond.kind == "delete":
            return "deleted"
        raise
    if cond.met(obj):
        return "condition met"
    watch = client.watch(info.kind, namespace, field_selector=f"metadata.name={name}",
                         resource_version=obj["metadata"].get("resourceVersion", ""))
    try:
        async for event in watch:
            if event.type == "BOOKMARK":
                continue
            if event.type == "DELETED":
                if cond.kind == "delete":
                    return "deleted"
                raise CliError(f'{info.qualified_plural} "{name}" was deleted while waiting')
            if cond.met(event.object):
                return "condition met"
    finally:
        await watch.aclose()
    raise CliError(f"the watch of {info.qualified_plural}/{name} ended while waiting")


@click.command()
@click.argument("resources", nargs=-1, metavar="KIND NAME... | KIND/NAME...")
@click.option("--for", "for_", required=True, metavar="CONDITION",
              help="condition=NAME[=VALUE], jsonpath='{.path}'=VALUE or delete.")
@click.option("--timeout", default="30s", show_default=True, help="How long to wait (negative: a week).")
@click.option("-l", "--selector", default="", metavar="SELECTOR")
@click.option("--all", "all_", is_flag=True)
@global_options
def wait(resources: tuple[str, ...], for_: str, timeout: str, selector: str, all_: bool) -> int:
    """Wait for a condition on one or more objects."""
    cond = Condition.parse(for_)
    seconds = parse_timeout(timeout)
    targets = parse_targets(resources, verb="wait")
    s = session()

    async def run(client: Client) -> int:
        objects = await resolve(client, targets, s.namespace, selector=selector, all_=all_)
        if not objects:
            raise CliError("no matching resources found")
        for info, name in objects:
            ns = s.namespace if info.namespaced else ""
            try:
                word = await asyncio.wait_for(wait_one(client, info, name, ns, cond),
                                              timeout=seconds)
            except asyncio.TimeoutError:
                raise CliError(f"timed out waiting for the condition on {info.qualified_plural}/{name}") from None
            click.echo(f"{info.qualified}/{name} {word}")
        return 0
    return s.run(run)
