"""`ctl rollout` and `ctl scale` against a real API server with the Deployment controllers running.

The click commands run in a worker thread (they start their own event loop),
while the controllers and FakeKubelet run in the test's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from click.testing import CliRunner, Result
from controllers_support import FakeKubelet, deployment, modify, pods_of, running, until

from cli.commands.rollout import rollout
from cli.commands.scale import scale
from cli.errors import CliError
from controlplane.controllers.deployment import DeploymentController
from controlplane.controllers.replicaset import ReplicaSetController
from controlplane.controllers.revisions import REVISION


@contextlib.asynccontextmanager
async def cluster(client, namespace) -> AsyncIterator[None]:
    async with running(client, ReplicaSetController(namespace=namespace),
                       DeploymentController(namespace=namespace)), FakeKubelet(client, namespace, delay=0.1):
        yield


async def ctl(api_server, namespace: str, command, *args: str) -> Result:
    runner = CliRunner()
    argv = [*args, "--config", str(api_server.admin_config), "-n", namespace]
    return await asyncio.to_thread(runner.invoke, command, argv, env={"SKIFF_CONFIG": "/nonexistent"},
                                   standalone_mode=False)


def image_of(obj: dict) -> str:
    spec = obj["spec"]["template"]["spec"] if "template" in obj["spec"] else obj["spec"]
    return spec["containers"][0]["image"]


def set_image(image: str):
    def change(obj: dict) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return change


async def wait_rolled_out(api_server, namespace: str) -> str:
    result = await ctl(api_server, namespace, rollout, "status", "deploy/web", "--timeout", "20s")
    assert result.exception is None, result.output
    return result.output


async def test_status_waits_and_undo_restores_the_previous_template(client, namespace, api_server):
    async with cluster(client, namespace):
        await client.create(deployment("web", namespace, replicas=2, image="busybox:1"))
        output = await wait_rolled_out(api_server, namespace)
        assert output.splitlines()[-1] == 'deployment "web" successfully rolled out'

        await modify(client, "Deployment", "web", namespace, set_image("busybox:2"))
        output = await wait_rolled_out(api_server, namespace)
        assert output.splitlines()[-1] == 'deployment "web" successfully rolled out'

        result = await ctl(api_server, namespace, rollout, "history", "deployment", "web")
        assert result.output.splitlines() == ["deployment.apps/web", "REVISION  CHANGE-CAUSE", "1         <none>",
                                              "2         <none>", ""]

        result = await ctl(api_server, namespace, rollout, "undo", "deploy/web")
        assert result.exception is None and result.output == "deployment.apps/web rolled back\n"
        d = await client.get("Deployment", "web", namespace)
        assert image_of(d) == "busybox:1"
        await wait_rolled_out(api_server, namespace)
        pods = await pods_of(client, namespace)
        assert len(pods) == 2 and {image_of(p) for p in pods} == {"busybox:1"}
        current = [rs for rs in (await client.list("ReplicaSet", namespace)).items if rs["spec"]["replicas"]]
        assert len(current) == 1 and image_of(current[0]) == "busybox:1"
        assert current[0]["metadata"]["annotations"][REVISION] == "3"   # the old ReplicaSet, renumbered

        result = await ctl(api_server, namespace, rollout, "history", "deploy/web", "--revision", "2")
        assert "deployment.apps/web with revision #2" in result.output and "busybox:2" in result.output
        result = await ctl(api_server, namespace, rollout, "undo", "deploy/web", "--to-revision", "9")
        assert isinstance(result.exception, CliError)
        assert result.exception.message == "unable to find specified revision 9 in history"


async def test_restart_pause_resume_and_scale(client, namespace, api_server):
    async with cluster(client, namespace):
        await client.create(deployment("web", namespace, replicas=2))
        await wait_rolled_out(api_server, namespace)

        result = await ctl(api_server, namespace, scale, "deploy/web", "--replicas", "3")
        assert result.exception is None and result.output == "deployment.apps/web scaled\n"
        await wait_rolled_out(api_server, namespace)
        assert len(await pods_of(client, namespace)) == 3
        result = await ctl(api_server, namespace, scale, "deploy/web", "--replicas", "1", "--current-replicas", "2")
        assert result.return_value == 1 and result.stderr == "error: Expected replicas to be 2, was 3\n"
        result = await ctl(api_server, namespace, scale, "deploy/web", "--replicas", "-1")
        assert "must be greater than or equal to 0" in result.exception.message

        before = {p["metadata"]["name"] for p in await pods_of(client, namespace)}
        result = await ctl(api_server, namespace, rollout, "restart", "deploy/web")
        assert result.output == "deployment.apps/web restarted\n"
        await wait_rolled_out(api_server, namespace)

        async def replaced():
            names = {p["metadata"]["name"] for p in await pods_of(client, namespace)}
            return len(names) == 3 and not names & before
        await until(replaced, message="every pod replaced")

        result = await ctl(api_server, namespace, rollout, "pause", "deploy/web")
        assert result.output == "deployment.apps/web paused\n"
        result = await ctl(api_server, namespace, rollout, "pause", "deploy/web")
        assert result.exception.message == 'deployments.apps "web" is already paused'
        result = await ctl(api_server, namespace, rollout, "undo", "deploy/web")
        assert "you cannot rollback a paused deployment" in result.exception.message
        result = await ctl(api_server, namespace, rollout, "resume", "deploy/web")
        assert result.output == "deployment.apps/web resumed\n"
        assert not (await client.get("Deployment", "web", namespace))["spec"].get("paused")
