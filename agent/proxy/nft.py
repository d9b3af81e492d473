"""Writing the proxy's table: incremental changes as netlink batches, full syncs through libnftables.

Incremental changes (`apply`, the common case: an endpoint turned ready) go to the kernel
as one nf_tables netlink batch (netlink.py) on a socket kept open: no nft, so no nft
cache, whose read of the whole table before each transaction was most of an update's
cost (below, and docs/PERFORMANCE.md). If a change cannot be encoded (a rule not built
from expressions.py's pieces) or the socket cannot be opened, the same ops go through
libnftables as text. Full syncs (`run`: the whole table at start, after an error, once an
hour) stay nft scripts: nft parses and checks every rule, and a full sync is rare.

Why not `nft -f -` for the scripts, as agent/network/nftables.py does for hostPorts: the
proxy changes the table whenever an endpoint changes, and measured on this project's
2-core test machine under load (docs/PERFORMANCE.md) a child `nft` cost 80-150 ms per
call with 1,000 Services programmed, most of it process start and library loading;
through libnftables (`nft_run_cmd_from_buffer`, the library the `nft` program is a thin
shell around) in a context kept open, what is left is nft reading the ruleset back into
its cache before each transaction (nftables 1.0.6 does so whenever the ruleset changed
since its last read - after each of our own transactions), which the netlink path avoids.

Both block, so they run on one worker thread (agent.network.netns.NetnsWorker)
started from the event loop's thread, in that thread's network namespace: the node's,
as for the pod network. The context and the netlink socket are made on that thread.
If libnftables cannot be loaded, the same scripts go to a child `nft -f -`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import socket
import subprocess

from agent.network.errors import NetworkError
from agent.network.netns import NetnsWorker

from .expressions import EncodingError
from .netlink import NetlinkError, NftNetlink
from .transaction import Op, batch

log = logging.getLogger(__name__)


class NftError(NetworkError):
    pass


def _error(script: str, message: str) -> NftError:
    first = script.splitlines()[0][:100] if script else ""
    return NftError(f"nft failed applying '{first}'...: {message.strip()[-1500:]}")


class _Library:
    """A libnftables context; used on one thread only."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("nftables") or "libnftables.so.1"
        lib = ctypes.CDLL(path)
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        self.lib = lib
        self.ctx = lib.nft_ctx_new(0)
        if not self.ctx:
            raise NftError("libnftables: could not create a context")
        lib.nft_ctx_buffer_output(self.ctx)
        lib.nft_ctx_buffer_error(self.ctx)

    def run(self, script: str) -> str:
        rc = self.lib.nft_run_cmd_from_buffer(self.ctx, script.encode())
        output = (self.lib.nft_ctx_get_output_buffer(self.ctx) or b"").decode(errors="replace")
        if rc != 0:
            raise _error(script, (self.lib.nft_ctx_get_error_buffer(self.ctx) or b"").decode(errors="replace"))
        return output

    def close(self) -> None:
        if self.ctx:
            self.lib.nft_ctx_free(self.ctx)
            self.ctx = None


def _run_program(script: str) -> str:
    try:
        proc = subprocess.run(["nft", "-f", "-"], input=script.encode(), capture_output=True, check=False)
    except FileNotFoundError:
        raise NftError("nft not found: install nftables (apt-get install nftables)") from None
    if proc.returncode != 0:
        raise _error(script, proc.stderr.decode(errors="replace"))
    return proc.stdout.decode(errors="replace")


def _ip_table_exists(name: str) -> bool:
    from pyroute2.nftables.main import NFTables
    nft = NFTables(nfgen_family=socket.AF_INET)
    try:
        return any(t.get_attr("NFTA_TABLE_NAME") == name for t in nft.get_tables())
    finally:
        nft.close()


class Nft:
    """`await nft.run(script)` / `await nft.apply(table, ops)`: one transaction in the namespace of
    the loop that first called it."""

    def __init__(self, name: str = "skiff-proxy-nft", *, use_library: bool = True, use_netlink: bool = True) -> None:
        self._worker = NetnsWorker(name)
        self._use_library = use_library
        self._library: _Library | None = None
        self._use_netlink = use_netlink
        self._netlink: NftNetlink | None = None
        self.writer = "netlink" if use_netlink else "libnftables" if use_library else "nft"   # of the last apply

    def run_now(self, script: str) -> str:
        """`run`, blocking: on the worker thread only (inside `call`)."""
        if self._use_library and self._library is None:
            try:
                self._library = _Library()
            except (OSError, AttributeError, NftError) as exc:
                log.warning("libnftables unavailable (%s): running the nft program instead", exc)
                self._use_library = False
        if self._library is not None:
            return self._library.run(script)
        return _run_program(script)

    async def run(self, script: str) -> str:
        if not script:
            return ""
        return await self._worker.run(self.run_now, script)

    def apply_now(self, table: str, ops: list[Op]) -> None:
        """`apply`, blocking: on the worker thread only (inside `call`)."""
        if self._use_netlink:
            try:
                encoded = batch(table, ops)
            except EncodingError as exc:      # a rule the netlink encoder does not know: nft knows it
                log.warning("service proxy: %s; applying this change through nft", exc)
            else:
                if self._netlink is None:
                    try:
                        self._netlink = NftNetlink()
                    except OSError as exc:
                        log.warning("nf_tables netlink socket unavailable (%s): applying changes through nft", exc)
                        self._use_netlink = False
                if self._netlink is not None:
                    try:
                        self._netlink.commit(encoded)
                    except NetlinkError as exc:
                        raise NftError(str(exc)) from None
                    self.writer = "netlink"
                    return
        self.run_now("\n".join(op.text(table) for op in ops) + "\n")
        self.writer = "libnftables" if self._library is not None else "nft"

    async def apply(self, table: str, ops: list[Op]) -> None:
        """An incremental transaction (transaction.update_ops) on `ip table`: written straight as one
        nf_tables netlink batch (netlink.py: no nft, no cache read), else as nft text."""
        if ops:
            await self._worker.run(self.apply_now, table, ops)

    async def table_exists(self, name: str) -> bool:
        """Whether table `ip name` exists, asked over netlink directly (pyroute2): `nft list tables`
        would first read every table's rules, sets and elements into nft's cache (hundreds of ms
        with thousands of Services on a busy machine); this costs about a millisecond."""
        return await self._worker.run(_ip_table_exists, name)

    async def call(self, fn, /, *args):  # type: ignore[no-untyped-def]
        """Run another blocking function (computing the rules, conntrack cleanup) on the same thread, in
        the same namespace; it may use run_now and apply_now."""
        return await self._worker.run(fn, *args)

    async def close(self) -> None:
        def cleanup() -> None:
            if self._library is not None:
                self._library.close()
                self._library = None
            if self._netlink is not None:
                self._netlink.close()
                self._netlink = None
        await self._worker.close(cleanup=cleanup)
