"""ResourceQuota and LimitRange through `ctl apply`, with manifests shaped like the Kubernetes
documentation's ("Configure a Pod Quota for a Namespace", "Configure Memory and CPU Quotas",
"Configure Default Memory Requests and Limits"): the API server's admission refuses the pod
that exceeds the quota with kubectl's message, concurrent creates never overrun it, the
ResourceQuota controller keeps `status.used` (and gives back what was deleted), LimitRange
fills in defaults and refuses what is outside its bounds."""

from __future__ import annotations

import asyncio

from controlplane.client import Client, Forbidden
from controlplane.controllers.resourcequota import ResourceQuotaController
from controllers_support import running, until

POD_QUOTA = """\
apiVersion: v1
kind: ResourceQuota
metadata:
  name: pod-demo
spec:
  hard:
    pods: "2"
"""

COMPUTE_QUOTA = """\
apiVersion: v1
kind: ResourceQuota
metadata:
  name: mem-cpu-demo
spec:
  hard:
    requests.cpu: "1"
    requests.memory: 1Gi
    limits.cpu: "2"
    limits.memory: 2Gi
"""

LIMITS = """\
apiVersion: v1
kind: LimitRange
metadata:
  name: mem-limit-range
spec:
  limits:
  - default:
      memory: 512Mi
    defaultRequest:
      memory: 256Mi
    max:
      memory: 1Gi
    type: Container
"""


def pod(name: str, resources: str = "") -> str:
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: app
    image: nginx
{resources}"""


async def used(c: Client, ns: str, name: str) -> dict:
    return ((await c.get("resourcequotas", name, ns)).get("status") or {}).get("used") or {}


async def test_pod_quota_refuses_the_third_pod_with_kubectls_message(client, namespace, ctl):
    async with running(client, ResourceQuotaController(namespace=namespace)):
        assert ctl("apply", "-n", namespace, "-f", "-", input=POD_QUOTA).returncode == 0
        await until(lambda: _used_is(client, namespace, "pod-demo", {"pods": "0"}), message="quota computed")
        for name in ("quota-demo-1", "quota-demo-2"):
            r = ctl("apply", "-n", namespace, "-f", "-", input=pod(name))
            assert r.returncode == 0, r.stderr
        r = ctl("apply", "-n", namespace, "-f", "-", input=pod("quota-demo-3"))
        assert r.returncode != 0
        assert ('pods "quota-demo-3" is forbidden: exceeded quota: pod-demo, requested: pods=1, used: pods=2, '
                'limited: pods=2') in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        got = ctl("get", "resourcequota", "-n", namespace).stdout.splitlines()
        assert got[0].split() == ["NAME", "AGE", "REQUEST", "LIMIT"] and "pods: 2/2" in got[1]
        # Deleting a pod gives its share back; the next create fits.
        await client.delete("pods", "quota-demo-1", namespace, grace_seconds=0)
        await until(lambda: _used_is(client, namespace, "pod-demo", {"pods": "1"}), timeout=15,
                    message="used to drop after the delete")
        assert ctl("apply", "-n", namespace, "-f", "-", input=pod("quota-demo-3")).returncode == 0


async def _used_is(c: Client, ns: str, name: str, want: dict) -> bool:
    return await used(c, ns, name) == want


async def test_concurrent_creates_never_overrun_the_quota(client, namespace):
    async with running(client, ResourceQuotaController(namespace=namespace)):
        await client.create({"apiVersion": "v1", "kind": "ResourceQuota",
                             "metadata": {"name": "five", "namespace": namespace}, "spec": {"hard": {"pods": 5}}})
        await until(lambda: _used_is(client, namespace, "five", {"pods": "0"}), message="quota computed")

        async def one(i: int) -> bool:
            try:
                await client.create({"apiVersion": "v1", "kind": "Pod",
                                     "metadata": {"name": f"p{i}", "namespace": namespace},
                                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
                return True
            except Forbidden as exc:
                assert "exceeded quota: five" in exc.message
                return False
        results = await asyncio.gather(*(one(i) for i in range(20)))
        assert sum(results) == 5
        assert len((await client.list("pods", namespace)).items) == 5
        assert await used(client, namespace, "five") == {"pods": "5"}


async def test_compute_quota_and_limitrange_defaults(client, namespace, ctl):
    async with running(client, ResourceQuotaController(namespace=namespace)):
        assert ctl("apply", "-n", namespace, "-f", "-", input=COMPUTE_QUOTA).returncode == 0
        await until(lambda: _used_is(client, namespace, "mem-cpu-demo", {
            "requests.cpu": "0", "requests.memory": "0", "limits.cpu": "0", "limits.memory": "0"}))
        # No limits while the quota caps them: refused, naming what is missing.
        r = ctl("apply", "-n", namespace, "-f", "-", input=pod("bare"))
        assert r.returncode != 0 and ("failed quota: mem-cpu-demo: must specify limits.cpu for: app; limits.memory for: app; "
                                      "requests.cpu for: app; requests.memory for: app") in r.stderr
        big = "    resources:\n      requests: {cpu: 800m, memory: 600Mi}\n      limits: {cpu: '1', memory: 800Mi}\n"
        assert ctl("apply", "-n", namespace, "-f", "-", input=pod("quota-mem-cpu-demo", big)).returncode == 0
        r = ctl("apply", "-n", namespace, "-f", "-", input=pod("quota-mem-cpu-demo-2", big))
        assert r.returncode != 0 and ("exceeded quota: mem-cpu-demo, requested: requests.cpu=800m,"
                                      "requests.memory=600Mi, used: requests.cpu=800m,requests.memory=600Mi, "
                                      "limited: requests.cpu=1,requests.memory=1Gi") in r.stderr, r.stderr

    # LimitRange: defaults filled in, a limit over the max refused.
    other = f"{namespace}-lr"
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    try:
        assert ctl("apply", "-n", other, "-f", "-", input=LIMITS).returncode == 0
        # Admission reads LimitRanges from the API server's watch cache: a moment after the write.
        created = await until(lambda: _create_default_pod(client, other), message="LimitRange defaults")
        res = created["spec"]["containers"][0]["resources"]
        assert res == {"limits": {"memory": "512Mi"}, "requests": {"memory": "256Mi"}}
        assert created["status"]["qosClass"] == "Burstable"
        over = "    resources:\n      limits: {memory: 1.5Gi}\n"
        r = ctl("apply", "-n", other, "-f", "-", input=pod("too-big", over))
        assert r.returncode != 0 and ('pods "too-big" is forbidden: maximum memory usage per Container is 1Gi, '
                                      'but limit is 1.5Gi') in r.stderr, r.stderr
    finally:
        await client.delete("namespaces", other)


async def _create_default_pod(c: Client, ns: str) -> dict | None:
    try:
        created = await c.create({"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"name": "default-mem-demo", "namespace": ns},
                                  "spec": {"containers": [{"name": "app", "image": "nginx"}]}})
    except Exception:
        return None
    if "resources" not in created["spec"]["containers"][0]:
        await c.delete("pods", "default-mem-demo", ns, grace_seconds=0)
        return None
    return created
