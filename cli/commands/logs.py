"""`ctl logs POD [-c C] [-f] [--previous] [--tail N] [--since 5m] [--timestamps]`.

The API server forwards the request to the agent of the pod's node, which reads
the container's log file; with -f the stream stays open until Ctrl-C or the
container ends.
"""

from __future__ import annotations

import re
import sys

import click

from cli.errors import CliError
from cli.session import global_options, session
from controlplane.client import Client

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> int:
    """`90s`, `5m`, `1h30m` -> seconds (kubectl's --since)."""
    m = _DURATION.match(text.strip())
    if not text.strip() or not m or not any(m.groups()):
        raise CliError(f'invalid argument "{text}" for "--since" flag: expected a duration like 30s, 5m or 1h')
    h, mi, s = (int(g or 0) for g in m.groups())
    return h * 3600 + mi * 60 + s


@click.command()
@click.argument("pod")
@click.option("-c", "--container", default="", help="Container name (needed when the pod has several).")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new lines.")
@click.option("-p", "--previous", is_flag=True, help="The previous instance of a restarted container.")
@click.option("--tail", type=int, default=-1, help="Lines from the end to show (-1: all).")
@click.option("--since", "since", default=None, metavar="DURATION", help="Only lines newer than this (5s, 2m, 1h).")
@click.option("--timestamps", is_flag=True, help="Prefix each line with its RFC3339 timestamp.")
@global_options
def logs(pod: str, container: str, follow: bool, previous: bool, tail: int, since: str | None,
         timestamps: bool) -> int:
    """Print the logs of a container in a pod."""
    s = session()
    name = pod.split("/", 1)[1] if pod.startswith(("pod/", "pods/", "po/")) else pod
    since_seconds = parse_duration(since) if since else 0

    async def stream(c: Client) -> None:
        async for chunk in c.logs(s.namespace, name, container=container, follow=follow, previous=previous,
                                  tail_lines=tail, since_seconds=since_seconds, timestamps=timestamps):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    try:
        s.run(stream)
    except KeyboardInterrupt:
        pass
    return 0
