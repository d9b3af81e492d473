"""The controllers run on their own (`python -m controlplane.controllers`), as
kube-controller-manager does, against an API server started with --no-controllers."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from controlplane.client import Client
from controllers_support import deployment, until
from procs import REPO, ControlPlane, stop_process

pytestmark = pytest.mark.asyncio


async def test_controller_manager_process_rolls_out_a_deployment(etcd, tmp_path):
    api = ControlPlane(tmp_path / "cp", etcd_endpoints=etcd.endpoint,
                       extra_args=["--etcd-prefix", f"/test-{uuid.uuid4().hex[:8]}", "--no-scheduler",
                                   "--no-controllers"]).start()
    log_path = tmp_path / "controllers.log"
    try:
        async with Client(api.address, credentials=api.credentials, timeout=10) as client:
            await client.create(deployment("web", "default", replicas=3))
            with open(log_path, "wb") as log:
                proc = subprocess.Popen([sys.executable, "-m", "controlplane.controllers", "--kubeconfig", str(api.admin_config)],
                                        cwd=REPO, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
            try:
                async def three_pods():
                    pods = (await client.list("pods", "default", label_selector="app=web")).items
                    return pods if len(pods) == 3 else None
                pods = await until(three_pods, timeout=30, message="the Deployment's 3 pods")
                owner, = pods[0]["metadata"]["ownerReferences"]
                assert owner["kind"] == "ReplicaSet" and owner["name"].startswith("web-")
            finally:
                stop_process(proc)
    finally:
        api.stop()
    assert proc.returncode == 0, log_path.read_text()
    assert "controllers running against" in log_path.read_text()
