"""`ctl create job NAME --from=cronjob/CRONJOB`: run a CronJob's Job now, as kubectl does.

    ctl create job test-run --from=cronjob/hello

The Job is the CronJob's `jobTemplate` (api/cronjob.py `job_from_cronjob`, the builder the
CronJob controller uses too), owned by the CronJob, with the annotation
`cronjob.kubernetes.io/instantiate: manual`. Prints `job.batch/test-run created`.

`create_job_from` is the code path the `create job` subcommand calls for `--from`; the
`create` group here is minimal (it keeps `ctl create -f` as it was and adds `job`), to be
joined with the other `create` subcommands.
"""

from __future__ import annotations

from typing import Any

import click

from api.cronjob import job_from_cronjob
from cli.commands import apply
from cli.errors import CliError
from cli.session import global_options, session
from controlplane.client import Client

MANUAL_ANNOTATION = "cronjob.kubernetes.io/instantiate"


def parse_from(source: str) -> str:
    """The CronJob's name in `--from=cronjob/NAME` (also `cronjobs/`, `cj/`, `cronjob.batch/`)."""
    kind, _, name = source.partition("/")
    if kind.lower() not in ("cronjob", "cronjobs", "cj", "cronjob.batch", "cronjobs.batch") or not name:
        raise CliError(f"from must be an existing cronjob: --from=cronjob/NAME, got {source!r}")
    return name


async def create_job_from(client: Client, namespace: str, name: str, source: str, *,
                          dry_run: bool = False) -> dict[str, Any]:
    """Create Job `name` from the CronJob `--from` names; the created Job."""
    cronjob = await client.get("cronjobs", parse_from(source), namespace)
    job = job_from_cronjob(cronjob, name, annotations={MANUAL_ANNOTATION: "manual"})
    return await client.create(job, dry_run=dry_run)


@click.command("job")
@click.argument("name")
@click.option("--from", "source", required=True, metavar="cronjob/NAME",
              help="The CronJob whose jobTemplate to run now.")
@click.option("--dry-run", type=click.Choice(["none", "server", "client"]), default="none",
              help="Only check (server: on the server).")
@global_options
def create_job(name: str, source: str, dry_run: str) -> int:
    """Create a Job from a CronJob's template."""
    parse_from(source)
    s = session()

    async def run(client: Client) -> int:
        await create_job_from(client, s.namespace, name, source, dry_run=dry_run != "none")
        suffix = " (server dry run)" if dry_run == "server" else " (dry run)" if dry_run == "client" else ""
        click.echo(f"job.batch/{name} created{suffix}")
        return 0
    return s.run(run)


def _create_callback(**kwargs: Any) -> Any:
    ctx = click.get_current_context()
    if ctx.invoked_subcommand is not None:
        return None
    return apply.create.callback(**kwargs)  # type: ignore[misc]


# `ctl create -f FILE` as before (apply.create), plus subcommands.
create = click.Group(name="create", params=list(apply.create.params), callback=_create_callback,
                      help=apply.create.help, invoke_without_command=True, short_help=apply.create.short_help)
create.add_command(create_job)
