"""`skiff-controlplane token create|list|delete`: join tokens, as `kubeadm token`.

    skiff-controlplane token create [--ttl 24h] [--description TEXT] [--state-dir DIR]
        prints:  skiff-agent --server 10.0.0.1:6443 --token abcdef.0123456789abcdef \\
                     --ca-cert-hash sha256:<hex>
    skiff-controlplane token list
    skiff-controlplane token delete abcdef

It runs on the control plane's machine and talks to the API server as the administrator
(`<state-dir>/admin.conf`); the token is a Secret in kube-system (bootstraptoken.py).
`--ttl 0` makes a token that never expires (not recommended).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import sys
from pathlib import Path

from api.duration import parse_duration
from controlplane.client import Client, NotFound
from controlplane.client import kubeconfig
from controlplane.client.errors import ApiError
from controlplane.pki import bootstraptoken


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-controlplane token", description="Manage join tokens.")
    p.add_argument("--state-dir", type=Path,
                   default=Path(os.environ.get("SKIFF_STATE_DIR", "~/.skiff/controlplane")),
                   help="the control plane's state directory (admin.conf, apiserver.json)")
    sub = p.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a token and print the agent's join command")
    create.add_argument("token", nargs="?", default="", help="the token to use (default: a random one)")
    create.add_argument("--ttl", default="24h", help="how long the token is valid (e.g. 24h, 30m; 0: forever)")
    create.add_argument("--description", default="", help="a note kept with the token")
    create.add_argument("--server", default="", help="the API server address to print (default: advertised)")
    sub.add_parser("list", help="list tokens")
    delete = sub.add_parser("delete", help="delete tokens (by ID or whole token)")
    delete.add_argument("tokens", nargs="+")
    return p.parse_args(argv)


def _ttl_text(token: bootstraptoken.BootstrapToken, now: datetime.datetime) -> str:
    if token.expiration is None:
        return "<forever>"
    left = (token.expiration - now).total_seconds()
    if left <= 0:
        return "<expired>"
    hours, rest = divmod(int(left), 3600)
    return f"{hours}h{rest // 60}m" if hours else f"{rest // 60}m{rest % 60}s"


async def _run(args: argparse.Namespace) -> int:
    state = args.state_dir.expanduser()
    try:
        admin = kubeconfig.load(state / "admin.conf")
        info = json.loads((state / "apiserver.json").read_text())
    except (kubeconfig.ConfigError, OSError, ValueError) as exc:
        print(f"error: no control plane state in {state} ({exc}); is --state-dir right, "
              f"and has skiff-controlplane run there without --insecure?", file=sys.stderr)
        return 1
    async with Client(admin.server, credentials=admin.credentials, timeout=10) as client:
        if args.command == "create":
            token = args.token or bootstraptoken.generate()
            if not bootstraptoken.TOKEN_RE.match(token):
                print(f"error: token {token!r}: must match [a-z0-9]{{6}}.[a-z0-9]{{16}}", file=sys.stderr)
                return 1
            try:
                ttl = parse_duration(args.ttl)
            except ValueError as exc:
                print(f"error: --ttl: {exc}", file=sys.stderr)
                return 1
            await client.create(bootstraptoken.secret_for(token, ttl=datetime.timedelta(seconds=ttl) if ttl else None,
                                                          description=args.description))
            print(f"skiff-agent --server {args.server or info['advertise']} --token {token} "
                  f"--ca-cert-hash {info['caCertHash']}")
            return 0
        if args.command == "list":
            secrets = (await client.list("secrets", namespace=bootstraptoken.NAMESPACE)).items
            now = datetime.datetime.now(datetime.timezone.utc)
            rows = [("TOKEN", "TTL", "EXPIRES", "DESCRIPTION")]
            for secret in secrets:
                token = bootstraptoken.parse_secret(secret)
                if token is not None:
                    rows.append((f"{token.token_id}.<secret>", _ttl_text(token, now),
                                 bootstraptoken.rfc3339(token.expiration) if token.expiration else "<never>",
                                 token.description or "<none>"))
            widths = [max(len(r[i]) for r in rows) for i in range(3)]
            for row in rows:
                print("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "   " + row[3])
            return 0
        failed = 0
        for given in args.tokens:
            token_id = given.split(".", 1)[0]
            try:
                await client.delete("secrets", bootstraptoken.secret_name(token_id),
                                    namespace=bootstraptoken.NAMESPACE)
                print(f"bootstrap token {token_id!r} deleted")
            except NotFound:
                print(f"error: bootstrap token {token_id!r} not found", file=sys.stderr)
                failed = 1
        return failed


def main(argv: list[str]) -> int:
    args = _args(argv)
    try:
        return asyncio.run(_run(args))
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
