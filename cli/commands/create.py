"""`ctl create`: from manifests (`-f`), or one object made from flags, as kubectl's generators do.

    ctl create -f web.yaml
    ctl create namespace qos-example
    ctl create deployment web --image=nginx --replicas=3 [--port=80] [-- COMMAND ARGS...]
    ctl create configmap game-config --from-literal=lives=3 --from-file=ui.properties
    ctl create secret generic db-user-pass --from-literal=username=admin --from-file=password=./pw.txt
    ctl create job pi --image=perl -- perl -Mbignum=bpi -wle 'print bpi(2000)'
    ctl create job test --from=cronjob/NAME     (the CronJob's jobTemplate: cli/commands/create_job.py)
    ctl create cronjob hello --image=busybox --schedule='*/1 * * * *' -- echo hello
    ctl create serviceaccount build-robot

Every generator takes `--dry-run=client|server` and `-o yaml|json|name`: with
`--dry-run=client -o yaml` the object is printed (validated locally, nothing sent),
a starting point for a manifest. The objects are the ones kubectl makes: a Deployment's
pods labelled `app=NAME`, its container named after the image, a Job's pods
`restartPolicy: Never`. Prints `namespace/qos-example created`.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any, Callable

import click

from api.registry import lookup_kind, parse_object
from cli.commands import apply as apply_cmd
from cli.commands.create_job import job_from, parse_from
from cli.errors import CliError
from cli.printers import print_object
from cli.session import global_options, session

def generator_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("-o", "--output", type=click.Choice(["name", "yaml", "json"]),
                     help="Print the object in this format instead of a status line.")(f)
    f = click.option("--dry-run", "dry_run", type=click.Choice(["none", "client", "server"]), default="none",
                     is_flag=False, flag_value="client",
                     help="client: print the object only; server: let the server check it without writing.")(f)
    return global_options(f)


def finish(obj: dict[str, Any], dry_run: str, output: str | None) -> int:
    """Validate, create (unless --dry-run=client) and print the object as kubectl does."""
    s = session()
    info = lookup_kind(obj["apiVersion"], obj["kind"])
    if info.namespaced:
        obj["metadata"]["namespace"] = s.namespace
    parse_object(obj)                      # ValidationFailed: one line naming the field (cli.main)
    if dry_run == "client":
        written = obj
    else:
        written = s.run(lambda c: c.create(obj, dry_run=dry_run == "server"))
    if not print_object(info, written, output):
        suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(dry_run, "")
        click.echo(f"{info.qualified}/{obj['metadata']['name']} created{suffix}")
    return 0


def container_name(image: str) -> str:
    """kubectl's name for a container made from an image: its last path part, without tag or digest."""
    base = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    name = re.sub(r"[^a-z0-9-]", "-", base.lower()).strip("-")
    return name[:63] or "container"


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, **extra}


def _container(name: str, image: str, command: tuple[str, ...]) -> dict[str, Any]:
    """A generated object's container: its name and image, and the command after `--` if any."""
    container: dict[str, Any] = {"name": name, "image": image}
    if command:
        container["command"] = list(command)
    return container


class _WithShortNames(click.Group):
    """`create ns|sa|deploy|cm|cj` as kubectl takes them."""

    SHORT = {"ns": "namespace", "sa": "serviceaccount", "deploy": "deployment", "cm": "configmap", "cj": "cronjob"}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.SHORT.get(cmd_name, cmd_name))


@click.group(cls=_WithShortNames, invoke_without_command=True,
             short_help="Create objects from manifests or from flags.")
@apply_cmd.manifest_options
@apply_cmd.write_options
@global_options
@click.pass_context
def create(ctx: click.Context, filenames: tuple[str, ...], recursive: bool, dry_run: str, output: str | None) -> int:
    """Create objects from manifests (-f), or one object from flags (the subcommands);
    fails if it already exists."""
    if ctx.invoked_subcommand is not None:
        return 0
    batch = apply_cmd.load_checked(filenames, recursive, verb="create")
    return apply_cmd.run_writes(batch, apply_cmd._create, action="creating", dry_run=dry_run, output=output)


@create.command(name="namespace")
@click.argument("name")
@generator_options
def create_namespace(name: str, dry_run: str, output: str | None) -> int:
    """Create a namespace: ctl create namespace NAME."""
    return finish({"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(name)}, dry_run, output)


@create.command(name="serviceaccount")
@click.argument("name")
@generator_options
def create_serviceaccount(name: str, dry_run: str, output: str | None) -> int:
    """Create a ServiceAccount: ctl create serviceaccount NAME."""
    return finish({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name)}, dry_run, output)


@create.command(name="deployment", context_settings={"allow_interspersed_args": True})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--image", "images", multiple=True, metavar="IMAGE", help="Image of a container (repeatable).")
@click.option("--replicas", type=int, default=1, show_default=True, help="Number of pods.")
@click.option("--port", type=int, default=None, help="The container port to expose.")
@generator_options
def create_deployment(name: str, command: tuple[str, ...], images: tuple[str, ...], replicas: int,
                      port: int | None, dry_run: str, output: str | None) -> int:
    """Create a Deployment: ctl create deployment NAME --image=IMAGE [--replicas=N] [-- COMMAND...]."""
    if not images:
        raise CliError("required flag(s) \"image\" not set")
    if command and len(images) > 1:
        raise CliError("cannot specify multiple --image options and command")
    containers = []
    for image in images:
        container = _container(container_name(image), image, command)
        if port is not None:
            container["ports"] = [{"containerPort": port}]
        containers.append(container)
    labels = {"app": name}
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, labels=labels),
           "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}}}}
    return finish(obj, dry_run, output)


def _read_file(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None


def data_from(literals: tuple[str, ...], files: tuple[str, ...]) -> dict[str, bytes]:
    """kubectl's `--from-literal=KEY=VALUE` and `--from-file=[KEY=]PATH` (a directory: each file in it)."""
    out: dict[str, bytes] = {}

    def put(key: str, value: bytes, flag: str) -> None:
        if key in out:
            raise CliError(f"cannot add key {key}, another key by that name already exists in data")
        if not key or not re.fullmatch(r"[-._a-zA-Z0-9]+", key):
            raise CliError(f'{flag}: "{key}" is not a valid key name: a valid key must consist of '
                           f"alphanumeric characters, '-', '_' or '.'")
        out[key] = value

    for literal in literals:
        key, sep, value = literal.partition("=")
        if not sep:
            raise CliError(f"invalid literal source {literal}, expected key=value")
        put(key, value.encode(), "--from-literal")
    for spec in files:
        key, sep, path = spec.partition("=")
        if not sep:
            key, path = "", spec
        p = Path(path)
        if p.is_dir():
            if key:
                raise CliError(f"cannot give a key name for a directory path: {spec}")
            for child in sorted(p.iterdir()):
                if child.is_file():
                    put(child.name, _read_file(str(child), "--from-file"), "--from-file")
        else:
            put(key or p.name, _read_file(path, "--from-file"), "--from-file")
    return out


def _text(value: bytes) -> str | None:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return None


@create.command(name="configmap")
@click.argument("name")
@click.option("--from-literal", "literals", multiple=True, metavar="KEY=VALUE")
@click.option("--from-file", "files", multiple=True, metavar="[KEY=]PATH")
@generator_options
def create_configmap(name: str, literals: tuple[str, ...], files: tuple[str, ...], dry_run: str,
                     output: str | None) -> int:
    """Create a ConfigMap from literals and files (binary files go to binaryData)."""
    data, binary = {}, {}
    for key, value in data_from(literals, files).items():
        text = _text(value)
        if text is None:
            binary[key] = base64.b64encode(value).decode()
        else:
            data[key] = text
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name)}
    if data:
        obj["data"] = data
    if binary:
        obj["binaryData"] = binary
    return finish(obj, dry_run, output)


@create.group(name="secret")
def create_secret() -> None:
    """Create a Secret (generic)."""


@create_secret.command(name="generic")
@click.argument("name")
@click.option("--from-literal", "literals", multiple=True, metavar="KEY=VALUE")
@click.option("--from-file", "files", multiple=True, metavar="[KEY=]PATH")
@click.option("--type", "type_", default="Opaque", show_default=True, help="The Secret's type.")
@generator_options
def create_secret_generic(name: str, literals: tuple[str, ...], files: tuple[str, ...], type_: str, dry_run: str,
                          output: str | None) -> int:
    """Create a Secret from literals and files: ctl create secret generic NAME --from-literal=K=V."""
    data = {k: base64.b64encode(v).decode() for k, v in data_from(literals, files).items()}
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name), "type": type_}
    if data:
        obj["data"] = data
    return finish(obj, dry_run, output)


@create.command(name="job", context_settings={"allow_interspersed_args": True})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--image", default="", help="The container's image.")
@click.option("--from", "source", default="", metavar="KIND/NAME", help="Make the Job from another object "
              "(cronjob/NAME).")
@generator_options
def create_job(name: str, command: tuple[str, ...], image: str, source: str, dry_run: str,
               output: str | None) -> int:
    """Create a Job: ctl create job NAME --image=IMAGE [-- COMMAND...]."""
    if source:
        if image or command:
            raise CliError("either --image or --from must be specified, not both")
        parse_from(source)
        s = session()
        return finish(s.run(lambda c: job_from(c, s.namespace, name, source)), dry_run, output)
    if not image:
        raise CliError("either --image or --from must be specified")
    container = _container(name, image, command)
    obj = {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(name),
           "spec": {"template": {"spec": {"containers": [container], "restartPolicy": "Never"}}}}
    return finish(obj, dry_run, output)


@create.command(name="cronjob", context_settings={"allow_interspersed_args": True})
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--image", default="", help="The container's image.")
@click.option("--schedule", default="", help="A schedule in cron format: '*/1 * * * *'.")
@click.option("--restart", default="OnFailure", type=click.Choice(["OnFailure", "Never"]), show_default=True)
@generator_options
def create_cronjob(name: str, command: tuple[str, ...], image: str, schedule: str, restart: str, dry_run: str,
                   output: str | None) -> int:
    """Create a CronJob: ctl create cronjob NAME --image=IMAGE --schedule='*/1 * * * *' [-- COMMAND...]."""
    if not image:
        raise CliError('required flag(s) "image" not set')
    if not schedule:
        raise CliError('required flag(s) "schedule" not set')
    container = _container(name, image, command)
    obj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": _meta(name),
           "spec": {"schedule": schedule, "jobTemplate": {"metadata": {"name": name}, "spec": {
               "template": {"spec": {"containers": [container], "restartPolicy": restart}}}}}}
    return finish(obj, dry_run, output)
