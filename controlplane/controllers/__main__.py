"""Run the controllers on their own: `python -m controlplane.controllers --kubeconfig FILE`.

By default `skiff-controlplane` runs the controllers (ReplicaSet, Deployment,
DaemonSet, Job, garbage collector, namespace, node lifecycle, node IPAM) inside
its leader process, where their requests and the API server's own work share one
Python process, one core. Run them alone — as Kubernetes runs
kube-controller-manager — to give them a process of their own; start
skiff-controlplane with `--no-controllers` then. Run exactly one: this process
takes part in no leader election, and two controller managers would both act on
every object (a ReplicaSet short of pods would get them twice). First
SIGINT/SIGTERM stops gracefully; a second one exits at once.
"""

from __future__ import annotations

import argparse
import logging

from api.entrypoint import run_main
from api.logsetup import add_log_level_argument
from controlplane.client import Client, kubeconfig
from controlplane.controllers import settings as controller_settings
from controlplane.controllers.all import default_controllers
from controlplane.controllers.manager import Manager
from controlplane.graceful import run_until_signalled

log = logging.getLogger("skiff.controllers")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m controlplane.controllers", description=__doc__.splitlines()[0])
    kubeconfig.add_arguments(p)
    controller_settings.add_arguments(p)
    add_log_level_argument(p)
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    settings = controller_settings.from_args(args)
    target = kubeconfig.from_arguments_or_exit(args)
    async with Client(target.server, credentials=target.credentials) as client:
        manager = Manager(client, default_controllers(settings), settings=settings)
        log.info("controllers running against %s", target.server)
        await run_until_signalled(manager.run(), name="controllers", log=log)
        log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> None:
    run_main(parse_args, serve, argv)


if __name__ == "__main__":
    main()
