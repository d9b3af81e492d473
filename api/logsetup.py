"""Process logging: the one set-up every Skiff program (API server, controllers, scheduler,
agent, hollow nodes) runs at start, so their logs read alike and one variable sets the level.

`add_log_level_argument` gives a parser `--log-level` (default: $SKIFF_LOG_LEVEL, else INFO);
`setup_logging(level)` configures the root logger with the shared line format. Pure stdlib,
in api/ because every component may import api/.
"""

from __future__ import annotations

import argparse
import logging
import os

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default=os.environ.get("SKIFF_LOG_LEVEL", "INFO"),
                        help="DEBUG, INFO, WARNING or ERROR (default: $SKIFF_LOG_LEVEL, else INFO)")


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=FORMAT)
