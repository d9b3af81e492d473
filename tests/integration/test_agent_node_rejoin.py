"""An agent coming back registers again: its Lease is renewed before its Node says Ready, so the
node lifecycle controller never sees a fresh Ready next to a Lease from before the outage (which
marked the node Unknown again and kept it tainted until the next status post, ~10 s per rejoin)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from agent.config import AgentConfig
from agent.node import LEASE_NAMESPACE, NodeAgent
from api.timestamps import parse_rfc3339
from controlplane.client import Client


async def test_rejoin_renews_the_lease_before_posting_ready(client: Client, tmp_path: Path) -> None:
    name = f"rejoin-{uuid.uuid4().hex[:8]}"
    config = AgentConfig(node_name=name, node_ip="198.18.0.9", state_dir=tmp_path)
    first = NodeAgent(client, config, cgroup_version=1)
    await first.register()
    await first.renew_lease()
    lease = await client.get("leases", name, LEASE_NAMESPACE)
    lease["spec"]["renewTime"] = "2026-01-01T00:00:00.000000Z"   # the outage: last beat long ago
    await client.update(lease)

    again = NodeAgent(client, config, cgroup_version=1)           # the restarted agent
    before = time.time()
    node = await again.register()                                 # the Node exists: taken over

    lease = await client.get("leases", name, LEASE_NAMESPACE)
    renewed = parse_rfc3339(lease["spec"]["renewTime"])
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    # Renewed by the registration itself (not by a lease loop, which this test never starts).
    assert renewed is not None and renewed >= int(before), lease["spec"]["renewTime"]
    await client.delete("nodes", name)
    await client.delete("leases", name, LEASE_NAMESPACE)
