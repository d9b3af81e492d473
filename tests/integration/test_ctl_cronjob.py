"""A CronJob as the Kubernetes documentation writes it ("Running Automated Tasks with a CronJob"),
through `ctl apply`, in real time: the every-minute schedule creates a Job within 70 s, the Job
runs (on hollow nodes, whose pods exit as the annotation says) and completes; `ctl get
cronjobs` prints kubectl's columns; `ctl create job --from=cronjob/hello` runs it at once; a bad
schedule is refused naming `spec.schedule`. The schedule arithmetic, concurrency policies and
history limits are tested on an injected clock in test_controllers_cronjob.py."""

from __future__ import annotations

import asyncio
import time
import uuid


from agent.hollow_status import EXIT_AFTER
from controlplane.controllers.cronjob import CronJobController
from controlplane.controllers.job import JobController
from controlplane.controllers.settings import ControllerSettings
from hollow_harness import controllers, hollow_nodes, scheduling, until
from procs import Ctl

SETTINGS = ControllerSettings(job_backoff_seconds=0.2)

HELLO = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: hello
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        metadata:
          annotations:
            {exit_after}: "0.5"
        spec:
          containers:
          - name: hello
            image: busybox:1.28
            imagePullPolicy: IfNotPresent
            command:
            - /bin/sh
            - -c
            - date; echo Hello from the Kubernetes cluster
          restartPolicy: OnFailure
"""


async def test_every_minute_cronjob_through_ctl(api, c, tmp_path):
    ns = f"cj-{uuid.uuid4().hex[:6]}"
    ctl = Ctl(api.admin_config)

    async def run(*args: str, stdin: str | None = None, check: bool = True):
        return await asyncio.to_thread(ctl, *args, "--server", api.address, stdin=stdin, check=check)
    await run("apply", "-f", "-", stdin=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
    bad = await run("apply", "-n", ns, "-f", "-", stdin=HELLO.format(exit_after=EXIT_AFTER).replace(
        '"* * * * *"', '"61 * * * *"'), check=False)
    assert bad.returncode != 0 and "spec.schedule" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr

    async with hollow_nodes(c, 1, prefix=f"cj{uuid.uuid4().hex[:4]}"), \
            controllers(c, [JobController(SETTINGS), CronJobController(SETTINGS)], SETTINGS), scheduling(c):
        applied = await run("apply", "-n", ns, "-f", "-", stdin=HELLO.format(exit_after=EXIT_AFTER))
        assert applied.stdout.strip() == "cronjob.batch/hello created"
        started = time.monotonic()

        async def scheduled_job() -> list[dict]:
            return [j for j in (await c.list("jobs", ns)).items if j["metadata"]["name"].startswith("hello-")]
        jobs = await until(scheduled_job, timeout=70, what="the CronJob's first Job", interval=0.5)
        assert time.monotonic() - started <= 70
        minutes = int(jobs[0]["metadata"]["name"].rsplit("-", 1)[1])
        assert abs(minutes * 60 - time.time()) < 120   # named by the scheduled minute since the epoch

        async def completed() -> bool:
            job = await c.get("jobs", jobs[0]["metadata"]["name"], ns)
            return any(cond["type"] == "Complete" and cond["status"] == "True"
                       for cond in (job.get("status") or {}).get("conditions") or [])
        await until(completed, timeout=30, what="the Job to complete")

        got = (await run("get", "cronjobs", "-n", ns)).stdout.splitlines()
        assert got[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
        assert got[1].split()[:7] == ["hello", "*", "*", "*", "*", "*", "<none>"]

        made = await run("create", "job", "test-job", "--from=cronjob/hello", "-n", ns)
        assert made.stdout.strip() == "job.batch/test-job created"
        manual = await c.get("jobs", "test-job", ns)
        assert manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
        assert manual["metadata"]["ownerReferences"][0]["name"] == "hello"
        missing = await run("create", "job", "x", "--from=cronjob/nope", "-n", ns, check=False)
        assert missing.returncode != 0 and 'cronjobs.batch "nope" not found' in missing.stderr
    await c.delete("namespaces", ns)   # its own etcd prefix: nothing outlives the module
