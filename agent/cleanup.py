"""`python -m agent.cleanup --state-dir DIR --cgroup-parent NAME`: remove everything an agent
made on this machine — for `ctl cluster down` and tests, after the agent has stopped.

Containers outlive their agent on purpose (supervisors in their own sessions), so
stopping the agent process is not enough to tear a node down. In order: kill every
process in the agent's cgroups and remove the groups; tear down the pod network
(bridge, veths, nftables table) and the service proxy's table if the agent had one; unmount everything under the
state directory (overlay root filesystems, namespace bind mounts, tmpfs volumes),
deepest first; delete the state directory.
"""

from __future__ import annotations

import argparse
import ctypes
import shutil
import sys
from pathlib import Path

MNT_DETACH = 2


def mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    with open("/proc/self/mounts") as f:
        targets = [line.split()[1].replace("\\040", " ") for line in f]
    return sorted((t for t in targets if t == prefix or t.startswith(prefix + "/")), key=len, reverse=True)


def unmount_all(root: Path) -> list[str]:
    """Lazy-unmount every mount below root; returns what could not be unmounted."""
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(5):
        targets = mounts_under(root)
        if not targets:
            return []
        for target in targets:
            libc.umount2(target.encode(), MNT_DETACH)
    return mounts_under(root)


def cleanup(state_dir: Path, cgroup_parent: str, *, cgroup_root: Path = Path("/sys/fs/cgroup")) -> list[str]:
    problems = []
    from agent.cgroups import open_manager
    try:
        open_manager(parent=cgroup_parent, root=cgroup_root).remove("")
    except Exception as exc:
        problems.append(f"cgroups {cgroup_parent}: {exc}")
    network_state = state_dir / "network"
    if network_state.exists():
        # The bridge, veths, routes and nftables table of this node's pod network
        # (run inside the node's network namespace: `ctl cluster down` does so).
        try:
            from agent.network import teardown_node_network
            teardown_node_network(network_state)
        except Exception as exc:
            problems.append(f"network: {exc}")
        try:                 # the service proxy's table (agent/proxy), kept by agents across restarts
            from agent.network.nftables import run_nft_sync
            from agent.proxy.syncer import delete_table_script
            run_nft_sync(delete_table_script())
        except Exception as exc:
            problems.append(f"service proxy table: {exc}")
    left = unmount_all(state_dir) if state_dir.exists() else []
    problems += [f"still mounted: {m}" for m in left]
    if not left:
        shutil.rmtree(state_dir, ignore_errors=True)
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent.cleanup", description=__doc__.splitlines()[0])
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--cgroup-parent", required=True)
    p.add_argument("--cgroup-root", type=Path, default=Path("/sys/fs/cgroup"))
    args = p.parse_args(argv)
    problems = cleanup(args.state_dir, args.cgroup_parent, cgroup_root=args.cgroup_root)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
