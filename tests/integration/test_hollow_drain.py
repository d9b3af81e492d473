"""`ctl cordon`, `uncordon` and `drain` against hollow nodes (which finish graceful deletions)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from cli.commands import nodes as node_commands
from hollow_harness import hollow_nodes


@pytest.fixture
def ctl(api_server, capsys):
    """Run `ctl ARGS` in a thread (ctl runs its own event loop); returns (exit code, stdout, stderr)."""
    from cli.main import cli, run
    for command in (node_commands.cordon, node_commands.uncordon, node_commands.drain):
        cli.add_command(command)  # until cli/main.py registers them

    async def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(run, ["--config", str(api_server.admin_config), *args])
        out, err = capsys.readouterr()
        return code, out, err
    return invoke


def pod(name: str, ns: str, owner_kind: str | None = None) -> dict:
    meta: dict = {"name": name, "namespace": ns}
    if owner_kind:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner_kind, "name": "owner",
                                    "uid": str(uuid.uuid4()), "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def test_cordon_uncordon_and_drain(client, namespace, ctl):
    async with hollow_nodes(client, 1, prefix=f"dr{uuid.uuid4().hex[:4]}") as cluster:
        node = cluster.node_names[0]
        for name, kind in (("web", "ReplicaSet"), ("daemon", "DaemonSet"), ("bare", None)):
            await client.create(pod(name, namespace, kind))
            await client.bind(namespace, name, node)

        assert await ctl("cordon", node) == (0, f"node/{node} cordoned\n", "")
        assert (await client.get("nodes", node))["spec"]["unschedulable"] is True
        assert (await ctl("cordon", node))[1] == f"node/{node} already cordoned\n"

        code, out, err = await ctl("drain", node)
        assert code == 1
        assert out == f"node/{node} already cordoned\n"
        assert f'error: unable to drain node "{node}" due to error: cannot delete DaemonSet-managed Pods ' \
               f'(use --ignore-daemonsets to ignore): {namespace}/daemon; cannot delete Pods that declare no ' \
               f'controller (use --force to override): {namespace}/bare' in err
        assert len((await client.list("pods", namespace)).items) == 3  # nothing evicted

        code, out, err = await ctl("drain", node, "--ignore-daemonsets", "--force", "--timeout", "30s")
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0] == f"node/{node} already cordoned"
        assert sorted(lines[1:3]) == [f"evicting pod {namespace}/bare", f"evicting pod {namespace}/web"]
        assert sorted(lines[3:5]) == ["pod/bare evicted", "pod/web evicted"]
        assert lines[5] == f"node/{node} drained"
        assert f"Warning: ignoring DaemonSet-managed Pods: {namespace}/daemon" in err
        assert f"Warning: deleting Pods that declare no controller: {namespace}/bare" in err
        left = [p["metadata"]["name"] for p in (await client.list("pods", namespace)).items]
        assert left == ["daemon"]

        assert await ctl("uncordon", node) == (0, f"node/{node} uncordoned\n", "")
        assert "unschedulable" not in (await client.get("nodes", node))["spec"]
        assert (await ctl("uncordon", node))[1] == f"node/{node} already uncordoned\n"
        code, _, err = await ctl("drain", "no-such-node")
        assert code == 1 and 'nodes "no-such-node" not found' in err
