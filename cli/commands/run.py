"""`ctl run NAME --image=IMAGE`: start one pod, as kubectl run does.

    ctl run nginx --image=nginx
    ctl run busybox --image=busybox --restart=Never -- sleep 3600
    ctl run shell --image=busybox --command -- sh -c 'echo hi'
    ctl run web --image=nginx --port=80 --labels=tier=web --env=MODE=prod --dry-run=client -o yaml

The pod is labelled `run=NAME` (unless --labels) and its one container is named NAME.
Arguments after `--` are the container's `args` (the image's entrypoint stays), or
its `command` with --command. Prints `pod/NAME created`.
"""

from __future__ import annotations

from typing import Any

import click

from cli.commands.create import finish, generator_options
from cli.errors import CliError


def _pairs(items: tuple[str, ...], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        for part in item.split(",") if flag == "--labels" else [item]:
            key, sep, value = part.partition("=")
            if not sep or not key:
                raise CliError(f"invalid {flag} value {part!r}: expected KEY=VALUE")
            out[key] = value
    return out


@click.command(context_settings={"allow_interspersed_args": True})
@click.argument("name")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--image", default="", help="The container's image (required).")
@click.option("--restart", default="Always", type=click.Choice(["Always", "OnFailure", "Never"]), show_default=True,
              help="The pod's restartPolicy.")
@click.option("--command", "as_command", is_flag=True, help="The arguments after -- are the command, not args.")
@click.option("--port", type=int, default=None, help="The container port to expose.")
@click.option("-l", "--labels", multiple=True, metavar="K=V,...", help="Labels of the pod (default run=NAME).")
@click.option("--env", multiple=True, metavar="K=V", help="Environment variables (repeatable).")
@click.option("--image-pull-policy", default="", type=click.Choice(["", "Always", "IfNotPresent", "Never"]))
@click.option("-i", "--stdin", "stdin", is_flag=True, hidden=True)
@click.option("-t", "--tty", is_flag=True, hidden=True)
@click.option("--rm", is_flag=True, hidden=True)
@generator_options
def run(name: str, args: tuple[str, ...], image: str, restart: str, as_command: bool, port: int | None,
        labels: tuple[str, ...], env: tuple[str, ...], image_pull_policy: str, stdin: bool, tty: bool, rm: bool,
        dry_run: str, output: str | None) -> int:
    """Create a pod running one image."""
    if not image:
        raise CliError('required flag(s) "image" not set')
    if stdin or tty or rm:
        raise CliError("ctl run does not attach (-i, -t, --rm); start the pod, then: ctl exec -it NAME -- sh")
    container: dict[str, Any] = {"name": name, "image": image}
    if args:
        container["command" if as_command else "args"] = list(args)
    if port is not None:
        container["ports"] = [{"containerPort": port}]
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in _pairs(env, "--env").items()]
    if image_pull_policy:
        container["imagePullPolicy"] = image_pull_policy
    obj = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "labels": _pairs(labels, "--labels") if labels else {"run": name}},
           "spec": {"containers": [container], "restartPolicy": restart}}
    return finish(obj, dry_run, output)
