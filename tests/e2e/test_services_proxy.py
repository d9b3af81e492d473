"""Services through the node proxy on a local cluster (`ctl cluster up --nodes 2`), used as a user would.

- a 2-replica httpd Deployment (one pod per node) behind a NodePort Service;
- from a pod, `wget http://<clusterIP>` answers, and 20 requests reach both backends;
- the NodePort answers on every node's address from this machine's root namespace;
- `KUBERNETES_SERVICE_HOST` and `WEB_SERVICE_HOST` are set in a pod started after the Service;
- scaled to 0: connection refused in under 1 s; scaled back: answered again.

Needs the Services control plane (cluster IPs, EndpointSlice controller): skipped without it.
The cluster lives in the test's temp dir and is taken down at the end.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from procs import free_port, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: node network namespaces, containers")]

IMAGE = "skiff.local/busybox:1.35"

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints: []
      containers:
        - name: httpd
          image: %(image)s
          command: ["sh", "-c", "mkdir -p /tmp/www && echo $POD_NAME > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          ports: [{containerPort: 8080, name: http}]
          resources: {requests: {cpu: 10m, memory: 8Mi}}
          readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: sh
      image: %(image)s
      command: ["sleep", "3600"]
"""


def _has_endpoint_slices() -> bool:
    from api.errors import ValidationFailed
    from api.registry import lookup
    try:
        lookup("endpointslices")
    except ValidationFailed:
        return False
    return True


def _refused_in_pod(ctl, url: str) -> float | None:
    """Seconds `wget` in the client pod took to be refused (busybox `time`, measured in the pod); None
    if it was not refused."""
    r = ctl("exec", "client", "--", "sh", "-c", f"time timeout 5 wget -q -O - {url}", check=False)
    output = r.stderr + r.stdout
    real = re.search(r"real\s+(\d+)m\s*([\d.]+)s", output)
    if r.returncode == 0 or "refused" not in output.lower() or real is None:
        return None
    return int(real.group(1)) * 60 + float(real.group(2))


def _refused_from_here(address: str, port: int) -> float | None:
    started = time.monotonic()
    try:
        socket.create_connection((address, port), timeout=5).close()
    except ConnectionRefusedError:
        return time.monotonic() - started
    except OSError:
        return None
    return None


def test_cluster_ip_node_port_env_and_scale_to_zero(tmp_path: Path) -> None:
    if not _has_endpoint_slices():
        pytest.skip("the API has no EndpointSlice kind yet (it comes with the Services control-plane work)")
    from e2e import test_multinode_network as multinode      # its Ctl and helpers
    cluster_dir = tmp_path / "cluster"
    ctl = multinode.Ctl(tmp_path / "config")
    try:
        ctl("cluster", "up", "--dir", str(cluster_dir), "--port", str(free_port()), "--nodes", "2", timeout=300)
        ctl("image", "load", str(_build_image(tmp_path)))
        ctl("apply", "-f", "-", stdin=WEB % {"image": IMAGE})
        wait_for(lambda: len(multinode.running_web_pods(ctl)) == 2, timeout=120, what="2 web pods Ready")
        svc = json.loads(ctl("get", "svc", "web", "-o", "json").stdout)
        cluster_ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
        wait_for(lambda: _phase(ctl, "client") == "Running", timeout=60, what="the client pod")

        url = f"http://{cluster_ip}/"
        first = wait_for(lambda: (lambda t: t if not t.startswith("(") else None)(
            multinode.http_get(ctl, "client", cluster_ip, 80)), timeout=30, what=f"an answer from {url}")
        assert first.strip().startswith("web-")
        names = {multinode.http_get(ctl, "client", cluster_ip, 80).strip() for _ in range(20)}
        assert len(names) == 2, names                                         # both backends

        nodes = json.loads(ctl("get", "nodes", "-o", "json").stdout)["items"]
        for node in nodes:
            address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
            with socket.create_connection((address, node_port), timeout=5) as s:      # this machine's root ns
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                assert b"web-" in s.recv(4096) + s.recv(4096)

        env = ctl("exec", "client", "--", "env").stdout
        assert "KUBERNETES_SERVICE_HOST=" in env and f"WEB_SERVICE_HOST={cluster_ip}" in env

        ctl("scale", "deployment", "web", "--replicas", "0")
        wait_for(lambda: _refused_in_pod(ctl, url) is not None, timeout=60, what="connection refused")
        assert _refused_in_pod(ctl, url) < 1.0
        assert _refused_from_here(address, node_port) < 1.0                    # the NodePort too

        ctl("scale", "deployment", "web", "--replicas", "1")
        wait_for(lambda: len(multinode.running_web_pods(ctl)) == 1, timeout=120, what="a web pod Ready again")
        try:
            wait_for(lambda: not multinode.http_get(ctl, "client", cluster_ip, 80).startswith("("), timeout=10,
                     what="the Service to answer again")
        except TimeoutError:
            slices = ctl("get", "endpointslices", "-o", "json", check=False).stdout
            rules = "".join(subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "table", "ip", "skiff-proxy"],
                                           capture_output=True, text=True).stdout
                            for ns in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                     text=True).stdout.split() if ns.startswith("skiff-"))
            raise AssertionError(f"no answer; slices: {slices[-3000:]}\nrules: {rules[-4000:]}") from None
    finally:
        ctl("cluster", "down", "--dir", str(cluster_dir), check=False, timeout=180)


def _phase(ctl, pod: str) -> str:
    r = ctl("get", "pod", pod, "-o", "json", check=False)
    return json.loads(r.stdout).get("status", {}).get("phase", "") if r.returncode == 0 else ""


def _build_image(tmp: Path) -> Path:
    import sys
    from procs import REPO
    out = tmp / "image"
    subprocess.run([sys.executable, str(REPO / "deploy" / "build-test-image.py"), "--out", str(out / "layout"),
                    "--archive", str(out / "busybox.tar")], check=True, capture_output=True)
    return out / "busybox.tar"
