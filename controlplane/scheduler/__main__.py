"""Run the scheduler on its own: `python -m controlplane.scheduler --kubeconfig FILE [--config FILE]`.

By default `skiff-controlplane` runs the scheduler inside its leader process; run
it alone to give it its own CPU, or to try a config. Two schedulers may run at
once: binds are compare-and-swap with a capacity check, so they never overfill a
node (the loser of a race retries). First SIGINT/SIGTERM stops gracefully (binds
in flight finish); a second one exits at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from api.entrypoint import run_main
from api.logsetup import add_log_level_argument
from controlplane.client import Client, kubeconfig
from controlplane.graceful import run_until_signalled
from controlplane.scheduler.config import ConfigError, load_config
from controlplane.scheduler.scheduler import Scheduler

log = logging.getLogger("skiff.scheduler")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m controlplane.scheduler", description=__doc__.splitlines()[0])
    kubeconfig.add_arguments(p)
    p.add_argument("--config", type=Path, default=None, help="YAML scheduler configuration (weights, knobs)")
    add_log_level_argument(p)
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    target = kubeconfig.from_arguments_or_exit(args)
    async with Client(target.server, credentials=target.credentials) as client:
        scheduler = Scheduler(client, config)
        await run_until_signalled(scheduler.run(), name="scheduler", log=log)
        log.info("stopped: %s", scheduler.stats)
    return 0


def main(argv: list[str] | None = None) -> None:
    run_main(parse_args, serve, argv)


if __name__ == "__main__":
    main()
