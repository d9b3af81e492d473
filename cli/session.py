"""One invocation's settings (server, namespace, config file) and the bridge to the async client.

Global options may be given before or after the command (`ctl -n dev get pods`
and `ctl get pods -n dev` both work, as with kubectl): each command carries
them, and their callbacks store the values on the `Session` that click keeps
as the context object. `Session.run` opens a `controlplane.client.Client` for
one command and runs a coroutine with it on the process's one event loop
(`run_async`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Awaitable, Callable, TypeVar

import click

from cli import config
from cli.errors import CliError
from controlplane.client import Client

T = TypeVar("T")


@dataclass
class Session:
    server_flag: str | None = None
    namespace_flag: str | None = None
    config_flag: str | None = None
    context_flag: str | None = None
    request_timeout: float = 30.0

    @cached_property
    def config(self) -> config.ClientConfig:
        return config.load(config.config_path(self.config_flag), context=self.context_flag)

    @property
    def server(self) -> str:
        return self.server_flag or self.config.server

    @property
    def namespace(self) -> str:
        return self.namespace_flag or self.config.namespace

    @property
    def explicit_namespace(self) -> bool:
        return bool(self.namespace_flag)

    def client(self) -> Client:
        credentials = self.config.credentials
        if credentials is None and not self.server.startswith("http://"):
            raise CliError(f"no credentials for the API server at {self.server} in {self.config.path}: "
                           f"run `ctl cluster up`, or pass --config with the control plane's admin.conf "
                           f"(http://{self.server} for a server run with --insecure)")
        try:
            return Client(self.server, credentials=credentials, timeout=self.request_timeout)
        except ValueError as exc:   # a bad address in a list of servers ("a:6443,b")
            source = "--server" if self.server_flag else f"server in {self.config.path}"
            raise CliError(f"{source}: {exc}") from None

    def run(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        """Run `fn(client)` on the process's event loop; the client is closed afterwards."""
        async def main() -> T:
            async with self.client() as c:
                return await fn(c)
        return run_async(main())


_loop: asyncio.AbstractEventLoop | None = None


def run_async(coro: Awaitable[T]) -> T:
    """Run a coroutine on the one event loop every async step of this process shares, never
    closed: grpc.aio's poller outlives a loop that `asyncio.run` closes, and a second
    `asyncio.run` in one command (edit reads, then writes; `cluster up` polls) printed
    "Exception in callback PollerCompletionQueue._handle_events ... Event loop is closed"."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
    return _loop.run_until_complete(coro)


def session() -> Session:
    return click.get_current_context().ensure_object(Session)


def _store(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None:
            setattr(ctx.ensure_object(Session), attr, value)
    return callback


def global_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--server, -n/--namespace and --config, accepted by the group and by every command."""
    options = [
        click.option("--server", "-s", metavar="HOST:PORT", expose_value=False, callback=_store("server_flag"),
                     help="API server address (default: from the client config, else 127.0.0.1:6443)."),
        click.option("--namespace", "-n", metavar="NS", expose_value=False, callback=_store("namespace_flag"),
                     help="Namespace for this request (default: from the client config, else default)."),
        click.option("--config", "config_file", metavar="FILE", expose_value=False, callback=_store("config_flag"),
                     help="Client config file (default: $SKIFF_CONFIG, else ~/.skiff/config)."),
        click.option("--context", "context_name", metavar="NAME", expose_value=False, callback=_store("context_flag"),
                     help="The client config context to use (default: its current-context)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f
