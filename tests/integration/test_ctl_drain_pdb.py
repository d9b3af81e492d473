"""PodDisruptionBudget and the Eviction subresource, with `ctl drain` as the docs' "Safely Drain a
Node" tells it: a budget `minAvailable: 1` over a two-replica Deployment whose pods both run on
the node being drained. The first eviction is allowed; the second is refused (429
TooManyRequests, "Cannot evict pod as it would violate the pod's disruption budget") and drain
says so and retries, until the first pod's replacement is Ready on the other node; then it is
evicted and the node is drained. Hollow nodes play the agents (their pods become Ready); the
scheduler and the ReplicaSet, Deployment and disruption controllers run in-process.
The real kubectl then drains the other node the same way through the REST front (POST
pods/NAME/eviction, which answers the refusal as a 429 Status)."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, AsyncIterator, Iterator

import pytest

from controlplane.client import Client, TooManyRequests
from controlplane.controllers.deployment import DeploymentController
from controlplane.controllers.disruption import DisruptionController
from controlplane.controllers.replicaset import ReplicaSetController
from controlplane.controllers.settings import ControllerSettings
from hollow_harness import controllers, hollow_nodes, private_control_plane, scheduling, until
from procs import Ctl

SETTINGS = ControllerSettings()

PDB = """\
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: zk-pdb
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app: zookeeper
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: zk
spec:
  replicas: 2
  selector:
    matchLabels:
      app: zookeeper
  template:
    metadata:
      labels:
        app: zookeeper
    spec:
      containers:
      - name: zk
        image: busybox:1.36
        command: ["sleep", "3600"]
"""


@pytest.fixture(scope="module")
def api(etcd, tmp_path_factory) -> Iterator[Any]:
    cp = private_control_plane(tmp_path_factory.mktemp("drain"), etcd.endpoint)
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
async def c(api) -> AsyncIterator[Client]:
    async with Client(api.address, credentials=api.credentials, timeout=10) as client:
        yield client


def _ready(p: dict) -> bool:
    return any(x.get("type") == "Ready" and x.get("status") == "True"
               for x in (p.get("status") or {}).get("conditions") or [])


async def test_drain_waits_for_the_budget_then_finishes(api, c):
    ns = f"pdb-{uuid.uuid4().hex[:6]}"
    ctl = Ctl(api.admin_config)

    async def run(*args: str, stdin: str | None = None, check: bool = True, timeout: float = 120):
        return await asyncio.to_thread(ctl, *args, "--server", api.address, stdin=stdin, check=check,
                                       timeout=timeout)
    await c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    prefix = f"dr{uuid.uuid4().hex[:4]}"
    first, second = f"{prefix}-0", f"{prefix}-1"
    ctls = [ReplicaSetController(SETTINGS), DeploymentController(SETTINGS), DisruptionController(SETTINGS)]
    async with hollow_nodes(c, 2, prefix=prefix), controllers(c, ctls, SETTINGS), scheduling(c):
        await run("cordon", second)          # both replicas land on the first node
        await run("apply", "-n", ns, "-f", "-", stdin=DEPLOYMENT)

        async def both_ready_on_first() -> bool:
            pods = (await c.list("pods", ns, label_selector="app=zookeeper")).items
            return len(pods) == 2 and all(_ready(p) and p["spec"].get("nodeName") == first for p in pods)
        await until(both_ready_on_first, timeout=30, what="two Ready replicas on the first node")
        await run("uncordon", second)
        assert (await run("apply", "-n", ns, "-f", "-", stdin=PDB)).stdout.strip() == \
            "poddisruptionbudget.policy/zk-pdb created"

        async def budget() -> dict:
            return (await c.get("poddisruptionbudgets", "zk-pdb", ns)).get("status") or {}
        await until(lambda: _allowed(budget, 1), timeout=15, what="the budget to allow one disruption")
        got = (await run("get", "pdb", "-n", ns)).stdout.splitlines()
        assert got[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
        assert got[1].split()[:4] == ["zk-pdb", "1", "N/A", "1"]

        started = time.monotonic()
        drained = await run("drain", first, "--timeout", "90s", "--grace-period", "0", timeout=150)
        assert drained.returncode == 0, drained.stderr
        assert ("Cannot evict pod as it would violate the pod's disruption budget." in drained.stderr), drained.stderr
        assert 'error when evicting pods/"zk-' in drained.stderr and "(will retry after 5s)" in drained.stderr
        assert drained.stdout.strip().endswith(f"node/{first} drained")
        assert time.monotonic() - started < 90
        pods = (await c.list("pods", ns, label_selector="app=zookeeper")).items
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        assert live and not [p for p in live if p["spec"].get("nodeName") == first]

        # The real kubectl drains the other node back through the REST front's eviction (protobuf).
        await run("uncordon", first)
        await until(lambda: _allowed(budget, 1), timeout=30, what="both replicas Ready again")
        kubectl = await asyncio.to_thread(
            subprocess.run, ["kubectl", "drain", second, "--timeout=90s", "--grace-period=0"],
            capture_output=True, text=True, timeout=150, env={**os.environ, "KUBECONFIG": str(api.kubeconfig)})
        assert kubectl.returncode == 0, kubectl.stderr + kubectl.stdout
        assert "Cannot evict pod as it would violate the pod's disruption budget." in kubectl.stderr, kubectl.stderr
        assert f"node/{second} drained" in kubectl.stdout
        pods = (await c.list("pods", ns, label_selector="app=zookeeper")).items
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        assert live and not [p for p in live if p["spec"].get("nodeName") == second]

        # The REST front answers a refusal as a 429 Status: use the one allowance up, then ask.
        await until(lambda: _allowed(budget, 1), timeout=30, what="both replicas Ready again")
        victim = next(p["metadata"]["name"] for p in (await c.list("pods", ns, label_selector="app=zookeeper")).items
                      if not p["metadata"].get("deletionTimestamp") and _ready(p))
        await c.evict(victim, ns)
        await until(lambda: _allowed(budget, 0), timeout=15, what="the budget to be used up")
        other = next(p["metadata"]["name"] for p in (await c.list("pods", ns, label_selector="app=zookeeper")).items
                     if p["metadata"]["name"] != victim and not p["metadata"].get("deletionTimestamp")
                     and _ready(p))
        with pytest.raises(TooManyRequests) as refused:
            await c.evict(other, ns)
        assert "Cannot evict pod as it would violate the pod's disruption budget." in refused.value.message
        code, body = await asyncio.to_thread(_rest_evict, api, ns, other)
        assert code == 429 and body["reason"] == "TooManyRequests", body
        assert "Cannot evict pod as it would violate the pod's disruption budget." in body["message"]


async def _allowed(budget: Any, n: int) -> bool:
    return (await budget()).get("disruptionsAllowed") == n


def _rest_evict(api: Any, ns: str, name: str) -> tuple[int, dict]:
    """POST pods/NAME/eviction on the REST front with the admin's client certificate (as kubectl drain)."""
    import yaml
    import base64
    import tempfile
    config = yaml.safe_load(api.kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    context = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as cert, \
            tempfile.NamedTemporaryFile("wb", suffix=".pem") as key:
        cert.write(base64.b64decode(user["client-certificate-data"]))
        key.write(base64.b64decode(user["client-key-data"]))
        cert.flush()
        key.flush()
        context.load_cert_chain(cert.name, key.name)
        body = json.dumps({"apiVersion": "policy/v1", "kind": "Eviction",
                           "metadata": {"name": name, "namespace": ns}}).encode()
        request = urllib.request.Request(f"{cluster['server']}/api/v1/namespaces/{ns}/pods/{name}/eviction",
                                         data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
