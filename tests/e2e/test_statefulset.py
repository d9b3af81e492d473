"""StatefulSet and local-path storage on a local cluster (`ctl cluster up --nodes 2`), as a user would.

The Kubernetes documentation's StatefulSet `web` (headless Service `nginx`, 2 replicas, a
`www` volumeClaimTemplate; busybox httpd instead of nginx), applied with `ctl apply`:
both claims are Bound by the built-in local-path provisioner (the default StorageClass),
each to a directory on the node its pod landed on; data written in web-0's volume is
still there after `ctl delete pod web-0` (the new web-0 is pinned to the same node by the
volume's nodeAffinity); `web-0.nginx` resolves from another pod; scaling to 3 and back
happens in order and keeps www-web-2; a template change with a partition updates only
the pods above it, `ctl rollout status|history|undo statefulset/web` follow it; deleting
a claim whose pod is gone deletes its volume and the agent removes the directory. Bad
inputs: a claim of an unknown class stays Pending with an event saying why, and a
changed selector is refused naming `spec.selector`. `cluster down` leaves nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from procs import REPO, free_port, http_get, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_multinode_network import Ctl, leftovers, nslookup  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: node network namespaces, containers")]

IMAGE, IMAGE_V2 = "skiff.local/busybox:1.35", "skiff.local/busybox:v2"

WEB = """
apiVersion: v1
kind: Service
metadata: {name: nginx, labels: {app: nginx}}
spec:
  ports: [{port: 80, name: web}]
  clusterIP: None
  selector: {app: nginx}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  selector: {matchLabels: {app: nginx}}
  serviceName: "nginx"
  replicas: %(replicas)d
  %(strategy)s
  template:
    metadata: {labels: {app: nginx}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: nginx
        image: %(image)s
        command: ["httpd", "-f", "-p", "80", "-h", "/usr/share/nginx/html"]
        ports: [{containerPort: 80, name: web}]
        readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 1}
        volumeMounts: [{name: www, mountPath: /usr/share/nginx/html}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: ["ReadWriteOnce"]
      resources: {requests: {storage: 1Gi}}
"""


def web(*, replicas: int = 2, image: str = IMAGE, partition: int | None = None) -> str:
    strategy = "" if partition is None else \
        "updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: %d}}" % partition
    return WEB % {"replicas": replicas, "image": image, "strategy": strategy}


@pytest.fixture(scope="module")
def two_tag_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("image")
    subprocess.run([sys.executable, str(REPO / "deploy" / "build-test-image.py"), "--out", str(out / "layout"),
                    "--archive", str(out / "busybox.tar"), "--tag", IMAGE, "--tag", IMAGE_V2],
                   check=True, capture_output=True)
    return out / "busybox.tar"


def ready(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp") \
        and any(c.get("type") == "Ready" and c.get("status") == "True" for c in pod["status"].get("conditions") or [])


def web_pods(ctl: Ctl) -> dict[str, dict]:
    return {p["metadata"]["name"]: p for p in ctl.pods("app=nginx")}


def wait_ready(ctl: Ctl, names: list[str], *, timeout: float = 120) -> dict[str, dict]:
    def check() -> dict | None:
        pods = web_pods(ctl)
        return pods if sorted(pods) == sorted(names) and all(ready(p) for p in pods.values()) else None
    return wait_for(check, timeout=timeout, interval=0.5, what=f"pods {names} Ready")


def claims(ctl: Ctl) -> dict[str, dict]:
    return {c["metadata"]["name"]: c for c in ctl.items("pvc")}


def test_statefulset_web_with_local_path_volumes(tmp_path: Path, two_tag_archive: Path) -> None:
    cluster_dir = (tmp_path / "cluster").resolve()
    ctl = Ctl(tmp_path / "config")
    tag = hashlib.sha256(str(cluster_dir).encode()).hexdigest()
    try:
        ctl("cluster", "up", "--dir", str(cluster_dir), "--port", str(free_port()), "--nodes", "2")
        ctl("image", "load", str(two_tag_archive))
        classes = ctl("get", "storageclass").stdout.splitlines()
        assert classes[0].split() == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE",
                                      "ALLOWVOLUMEEXPANSION", "AGE"]
        assert classes[1].split()[:6] == ["local-path", "(default)", "rancher.io/local-path", "Delete",
                                          "WaitForFirstConsumer", "false"]
        r = ctl("apply", "-f", "-", stdin=web())
        assert "statefulset.apps/web created" in r.stdout, r.stdout

        # -- both claims Bound, each to a directory on its pod's node --
        pods = wait_ready(ctl, ["web-0", "web-1"], timeout=180)
        bound = wait_for(lambda: (lambda cs: cs if len(cs) == 2 and all(
            (c.get("status") or {}).get("phase") == "Bound" for c in cs.values()) else None)(claims(ctl)),
            timeout=60, what="2 claims Bound")
        assert sorted(bound) == ["www-web-0", "www-web-1"]
        table = ctl("get", "pvc").stdout.splitlines()
        assert table[0].split() == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS",
                                    "VOLUMEATTRIBUTESCLASS", "AGE"]
        assert table[1].split()[:7] == ["www-web-0", "Bound", bound["www-web-0"]["spec"]["volumeName"], "1Gi",
                                        "RWO", "local-path", "<unset>"]
        volumes = {v["metadata"]["name"]: v for v in ctl.items("pv")}
        pv0 = volumes[bound["www-web-0"]["spec"]["volumeName"]]
        node0 = pods["web-0"]["spec"]["nodeName"]
        assert pv0["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == \
            [node0]
        dir0 = Path(pv0["spec"]["hostPath"]["path"])
        assert dir0.parent == cluster_dir / "nodes" / node0 / "local-path" and dir0.is_dir()
        assert "Bound" in ctl("get", "pv").stdout and "default/www-web-0" in ctl("get", "pv").stdout
        assert ctl("get", "sts").stdout.split()[:5] == ["NAME", "READY", "AGE", "web", "2/2"]

        # -- data survives the pod --
        ctl("exec", "web-0", "--", "sh", "-c", "echo $(hostname) > /usr/share/nginx/html/index.html")
        old_uid = pods["web-0"]["metadata"]["uid"]
        ctl("delete", "pod", "web-0")
        pods = wait_for(lambda: (lambda ps: ps if "web-0" in ps and ps["web-0"]["metadata"]["uid"] != old_uid
                                 and ready(ps["web-0"]) else None)(web_pods(ctl)),
                        timeout=120, interval=0.5, what="a new web-0 Ready")
        assert pods["web-0"]["spec"]["nodeName"] == node0
        assert ctl("exec", "web-0", "--", "cat", "/usr/share/nginx/html/index.html").stdout == "web-0\n"

        # -- stable DNS names through the headless Service --
        ip0 = pods["web-0"]["status"]["podIP"]
        assert wait_for(lambda: nslookup(ctl, "web-1", "web-0.nginx.default.svc.cluster.local") == {ip0},
                        timeout=30, what="web-0.nginx resolves")
        assert wait_for(lambda: http_get(ctl, "web-1", "web-0.nginx", 80) == "web-0\n", timeout=30,
                        what="http://web-0.nginx/ from web-1")

        # -- scale to 3 and back, in order --
        ctl("scale", "sts", "web", "--replicas", "3")
        pods = wait_ready(ctl, ["web-0", "web-1", "web-2"])
        assert claims(ctl)["www-web-2"]["status"]["phase"] == "Bound"
        events = ctl("get", "events", "--field-selector", "involvedObject.name=web", "-o", "json").stdout
        created = [e["message"] for e in sorted(json.loads(events)["items"],
                                                 key=lambda e: e.get("firstTimestamp") or "")
                   if e["reason"] == "SuccessfulCreate" and e["message"].startswith("create Pod")]
        assert [m.split()[2] for m in created][-3:] in (["web-1", "web-0", "web-2"], ["web-0", "web-1", "web-2"])
        ctl("scale", "sts", "web", "--replicas", "2")
        wait_ready(ctl, ["web-0", "web-1"])
        assert "www-web-2" in claims(ctl)                     # claims are kept when scaling down

        # -- a rolling update with a partition: only web-1 moves --
        ctl("apply", "-f", "-", stdin=web(image=IMAGE_V2, partition=1))
        r = ctl("rollout", "status", "statefulset/web", "--timeout", "120s")
        assert r.stdout.strip().splitlines()[-1] == "partitioned roll out complete: 1 new pods have been updated..."
        pods = wait_ready(ctl, ["web-0", "web-1"])
        images = {n: p["spec"]["containers"][0]["image"] for n, p in pods.items()}
        assert images == {"web-0": IMAGE, "web-1": IMAGE_V2}
        ctl("apply", "-f", "-", stdin=web(image=IMAGE_V2, partition=0))
        r = ctl("rollout", "status", "sts/web", "--timeout", "120s")
        assert r.stdout.strip().splitlines()[-1].startswith("statefulset rolling update complete 2 pods at revision")
        assert ctl("exec", "web-0", "--", "cat", "/usr/share/nginx/html/index.html").stdout == "web-0\n"
        history = ctl("rollout", "history", "statefulset/web").stdout.splitlines()
        assert history[:4] == ["statefulset.apps/web", "REVISION  CHANGE-CAUSE", "1         <none>", "2         <none>"]
        assert ctl("rollout", "undo", "statefulset/web").stdout.strip() == "statefulset.apps/web rolled back"
        ctl("rollout", "status", "statefulset/web", "--timeout", "120s")
        pods = wait_ready(ctl, ["web-0", "web-1"])
        assert {p["spec"]["containers"][0]["image"] for p in pods.values()} == {IMAGE}
        assert ctl("rollout", "history", "sts/web").stdout.splitlines()[2:4] == ["2         <none>", "3         <none>"]

        # -- bad inputs --
        r = ctl("apply", "-f", "-", stdin=web().replace("matchLabels: {app: nginx}",
                                                        "matchLabels: {app: nginx, tier: x}").replace(
            "labels: {app: nginx}}\n    spec", "labels: {app: nginx, tier: x}}\n    spec"), check=False)
        assert r.returncode != 0 and "spec.selector" in r.stderr and "field is immutable" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        ctl("apply", "-f", "-", stdin="""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: lost}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: nope
  resources: {requests: {storage: 1Gi}}
""")
        wait_for(lambda: 'storageclass.storage.k8s.io "nope" not found' in ctl("describe", "pvc", "lost").stdout,
                 timeout=30, what="an event saying why the claim waits")
        assert claims(ctl)["lost"]["status"]["phase"] == "Pending"

        # -- Delete reclaim: the claim of the scaled-away web-2 goes, so do its volume and directory --
        pv2 = claims(ctl)["www-web-2"]["spec"]["volumeName"]
        dir2 = Path(next(v for v in ctl.items("pv") if v["metadata"]["name"] == pv2)["spec"]["hostPath"]["path"])
        assert dir2.is_dir()
        ctl("delete", "pvc", "www-web-2")
        wait_for(lambda: pv2 not in {v["metadata"]["name"] for v in ctl.items("pv")}, timeout=30,
                 what="the volume deleted")
        wait_for(lambda: not dir2.exists(), timeout=60, what="the agent removed the directory")
        assert dir0.is_dir()
    finally:
        ctl("cluster", "down", "--dir", str(cluster_dir), check=False, timeout=180)
    assert leftovers(cluster_dir, [f"skiff-{tag[:6]}-", f"skb{tag[:6]}", f"skv{tag[:6]}"], f"skiff-{tag[:8]}") == []
