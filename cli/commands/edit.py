"""`ctl edit`: edit a live object in $EDITOR, as kubectl edit does.

    ctl edit deployment web
    KUBE_EDITOR="code --wait" ctl edit cm/game-config -n dev

The object is written as YAML to a temporary file under a comment header and the editor
($KUBE_EDITOR, else $EDITOR, else vi) is opened on it. On save the YAML is parsed and
validated here (the same models the server uses) and sent as an update pinned to the
version that was edited. A YAML error, an invalid field or a refusal from the server
re-opens the editor on the same text with the error as `#` comments at the top; saving it
unchanged gives up (`error: Edit cancelled, no valid changes were saved.`) and leaves a
copy of the edit in a file it names. An unchanged or empty file cancels the edit.
"""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
import tempfile
from typing import Any

import click
import yaml

from api.errors import ValidationFailed
from api.registry import parse_object
from cli.errors import CliError, one_line
from cli.manifests import parse_yaml
from cli.printers import to_yaml
from cli.resources import single_target
from cli.session import global_options, session
from controlplane.client import ApiError, Client

HEADER = """\
# Please edit the object below. Lines beginning with a '#' will be ignored,
# and an empty file will abort the edit. If an error occurs while saving this file will be
# reopened with the relevant failures.
#
"""


def editor_command() -> list[str]:
    return shlex.split(os.environ.get("KUBE_EDITOR") or os.environ.get("EDITOR") or "vi")


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def open_editor(text: str, suffix: str = ".yaml") -> str:
    fd, path = tempfile.mkstemp(prefix="ctl-edit-", suffix=suffix)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        command = editor_command()
        try:
            code = subprocess.call([*command, path])
        except OSError as exc:
            raise CliError(f"cannot start the editor {command[0]!r}: {exc.strerror or exc}; "
                           f"set KUBE_EDITOR or EDITOR") from None
        if code != 0:
            raise CliError(f"there was a problem with the editor {command[0]!r} (exit status {code})")
        with open(path) as f:
            return f.read()
    finally:
        os.unlink(path)


def _parse(text: str) -> dict[str, Any]:
    docs = parse_yaml(_strip_comments(text), "the edited file")   # CliError on YAML errors
    if len(docs) != 1 or not isinstance(docs[0].data, dict):
        raise CliError("the edited file must hold exactly one object")
    return docs[0].data


def _with_errors(body: str, what: str, errors: list[str]) -> str:
    lines = [f"# {what} was not valid:"] + [f"# * {e}" for e in errors] + ["#"]
    return HEADER + "\n".join(lines) + "\n" + _strip_comments(body).lstrip("\n") + "\n"


@click.command()
@click.argument("resources", nargs=-1, metavar="KIND NAME | KIND/NAME")
@click.option("-o", "--output", type=click.Choice(["yaml"]), default="yaml", hidden=True)
@global_options
def edit(resources: tuple[str, ...], output: str) -> int:
    """Edit an object in $KUBE_EDITOR / $EDITOR and save it to the server."""
    info, name = single_target(resources, verb="edit")
    s = session()
    ns = s.namespace if info.namespaced else ""
    what = f'{info.qualified_plural} "{name}"'

    async def fetch(client: Client) -> dict[str, Any]:
        return await client.get(info.kind, name, ns)

    async def save(client: Client, *, obj: dict[str, Any]) -> dict[str, Any]:
        return await client.update(obj)

    original = s.run(fetch)
    original_body = to_yaml(original)
    text = HEADER + original_body
    while True:
        edited = open_editor(text)
        body = _strip_comments(edited)
        if not body.strip():
            raise CliError("Edit cancelled, saved file was empty.")
        if body.strip() == _strip_comments(original_body).strip():
            click.echo("Edit cancelled, no changes made.")
            return 0
        if text != HEADER + original_body and body.strip() == _strip_comments(text).strip():
            fd, copy = tempfile.mkstemp(prefix="ctl-edit-", suffix=".yaml")
            with os.fdopen(fd, "w") as f:
                f.write(edited)
            raise CliError(f"Edit cancelled, no valid changes were saved. A copy of your changes has been "
                           f"stored to {copy!r}")
        try:
            obj = _parse(edited)
            meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            if meta.get("name") != name or obj.get("kind") != original.get("kind"):
                raise CliError("the name and kind of the object cannot be changed in an edit")
            parse_object(obj)
            s.run(functools.partial(save, obj=obj))
        except ValidationFailed as exc:
            text = _with_errors(body, what, [str(e) for e in exc.errors] if hasattr(exc, "errors") else [str(exc)])
            continue
        except (CliError, ApiError) as exc:
            text = _with_errors(body, what, [one_line(getattr(exc, "message", str(exc)))])
            continue
        except yaml.YAMLError as exc:
            text = _with_errors(body, what, [one_line(str(exc))])
            continue
        click.echo(f"{info.qualified}/{name} edited")
        return 0
