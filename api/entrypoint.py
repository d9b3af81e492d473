"""How a Skiff program's `main()` starts: parse the command line, set up logging at its
--log-level (api/logsetup.py), run the program's async `serve(args)` on a fresh event loop
and exit with the code it returns.

Shared by the processes that run one component on their own (`python -m
controlplane.controllers`, `python -m controlplane.scheduler`, `python -m
agent.hollow_cli`). In api/ because every component may import api/.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, Callable, Coroutine, NoReturn

from api.logsetup import setup_logging


def run_main(parse_args: Callable[[list[str] | None], argparse.Namespace],
             serve: Callable[[argparse.Namespace], Coroutine[Any, Any, int]], argv: list[str] | None = None) -> NoReturn:
    """parse_args(argv) (which must give `log_level`), logging, then sys.exit(asyncio.run(serve(args)))."""
    args = parse_args(argv)
    setup_logging(args.log_level)
    sys.exit(asyncio.run(serve(args)))
