"""`ctl` — the command line client, shaped like kubectl.

    ctl apply -f web.yaml            ctl get pods -o wide          ctl describe pod web
    ctl delete deploy web            ctl diff -f web.yaml          ctl explain pod.spec.containers
    ctl cluster up                   ctl api-resources             ctl version

This module builds the click group, adds each command family from
cli/commands/, and turns every failure into kubectl's one-line message on
stderr with exit code 1 (`diff` uses 1 for "differences", >1 for errors).
"""

from __future__ import annotations

import os
import sys

import click

from api.errors import ValidationFailed
from cli.commands import apply, cluster, delete, describe, diff, exec as exec_cmd, explain, get, image, logs, misc, nodes, rollout, scale
from cli.commands import auth, autoscale, configcmd, create_job, expose, portforward, schedule, top
from cli.errors import CliError, print_error, report
from cli.session import Session, global_options
from controlplane.client import ApiError

NoArgsIsHelp = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@global_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """ctl controls a Skiff cluster, as kubectl controls Kubernetes.

    The server address comes from --server, else the client config file
    ($SKIFF_CONFIG or ~/.skiff/config, written by `ctl cluster up`), else 127.0.0.1:6443.
    """
    ctx.ensure_object(Session)


for command in (apply.apply, create_job.create, apply.replace, get.get, describe.describe, delete.delete, diff.diff,
                explain.explain, misc.version, misc.api_resources, cluster.cluster, logs.logs, exec_cmd.exec_,
                rollout.rollout, scale.scale, nodes.cordon, nodes.uncordon, nodes.drain, image.image, top.top,
                schedule.schedule, auth.auth, configcmd.config_group, expose.expose, portforward.port_forward,
                autoscale.autoscale):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the command and exit with its status."""
    code = run(argv)
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `ctl get pods | head -1`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(code)


def run(argv: list[str] | None = None) -> int:
    try:
        result = cli.main(args=argv, prog_name="ctl", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Abort:
        return 130
    except KeyboardInterrupt:
        return 130
    except NoArgsIsHelp as exc:  # `ctl` or `ctl cluster` alone: show the help, as kubectl does
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        return 0
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        print_error(f"error: {exc.format_message()}{hint}")
        return 1
    except click.ClickException as exc:
        print_error(f"error: {exc.format_message()}")
        return 1
    except (CliError, ApiError) as exc:
        report(exc)
        return exc.code if isinstance(exc, CliError) else 1
    except ValidationFailed as exc:
        report(exc)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    main()
