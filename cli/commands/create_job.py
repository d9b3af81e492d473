"""`ctl create job NAME --from=cronjob/CRONJOB`: run a CronJob's Job now, as kubectl does.

    ctl create job test-run --from=cronjob/hello

The Job is the CronJob's `jobTemplate` (api/cronjob.py `job_from_cronjob`, the builder the
CronJob controller uses too), owned by the CronJob, with the annotation
`cronjob.kubernetes.io/instantiate: manual`. `job_from` makes it; the `create job`
subcommand (cli/commands/create.py) creates and prints it (`job.batch/test-run created`).
"""

from __future__ import annotations

from typing import Any

from api.cronjob import job_from_cronjob
from cli.errors import CliError
from controlplane.client import Client

MANUAL_ANNOTATION = "cronjob.kubernetes.io/instantiate"


def parse_from(source: str) -> str:
    """The CronJob's name in `--from=cronjob/NAME` (also `cronjobs/`, `cj/`, `cronjob.batch/`)."""
    kind, _, name = source.partition("/")
    if kind.lower() not in ("cronjob", "cronjobs", "cj", "cronjob.batch", "cronjobs.batch") or not name:
        raise CliError(f"from must be an existing cronjob: --from=cronjob/NAME, got {source!r}")
    return name


async def job_from(client: Client, namespace: str, name: str, source: str) -> dict[str, Any]:
    """Job `name` made from the CronJob `--from` names (not yet created)."""
    cronjob = await client.get("cronjobs", parse_from(source), namespace)
    return job_from_cronjob(cronjob, name, annotations={MANUAL_ANNOTATION: "manual"})
