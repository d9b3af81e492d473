"""Services through the node proxy and cluster DNS on a 3-node local cluster (`ctl cluster up --nodes 3`),
used as a user would (issue 12, Done when 1):

- a 3-replica httpd Deployment, one pod per node by a required podAntiAffinity (the scheduler spreads
  them), each serving its pod's name, behind a NodePort Service `web` and a headless Service;
- from a pod on every node, `http://web`, `http://web.default.svc.cluster.local` and `http://<clusterIP>`
  answer, and 30 requests reach all 3 backends;
- the NodePort answers on every node's address from this machine's root namespace;
- the headless Service resolves to the 3 pod IPs; `kubernetes.default` resolves;
- `KUBERNETES_SERVICE_HOST` (and `WEB_SERVICE_HOST`) are set in pods;
- a pod failing its readiness probe leaves `ctl get endpoints web` and gets no traffic;
- scaled to 0: connection refused in under 1 s; scaled back: answered within 1 s of `ctl get pods -w`
  showing a pod Ready.

The cluster lives in the test's temp dir; `cluster down` leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from procs import REPO, free_port, stop_process, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_multinode_network import (Ctl, image_archive, leftovers, nslookup,  # noqa: E402,F401 - a fixture
                                    running_web_pods)

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: node network namespaces, containers")]

IMAGE = "skiff.local/busybox:1.35"
NODES = ("node-1", "node-2", "node-3")

# Ready while /tmp/ready exists: `rm` it and the pod fails its readiness probe.
MANIFESTS = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - labelSelector: {matchLabels: {app: web}}
              topologyKey: kubernetes.io/hostname
      containers:
        - name: httpd
          image: %(image)s
          command: ["sh", "-c", "mkdir -p /tmp/www && echo $POD_NAME > /tmp/www/index.html && touch /tmp/ready && exec httpd -f -p 8080 -h /tmp/www"]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          ports: [{containerPort: 8080, name: http}]
          resources: {requests: {cpu: 10m, memory: 8Mi}}
          readinessProbe: {exec: {command: ["test", "-e", "/tmp/ready"]}, periodSeconds: 1}
""" + "".join(f"""---
apiVersion: v1
kind: Pod
metadata: {{name: client-{i}}}
spec:
  nodeName: node-{i}
  terminationGracePeriodSeconds: 1
  containers:
    - name: sh
      image: %(image)s
      command: ["sleep", "3600"]
""" for i in (1, 2, 3))


def _fetch_many(ctl: Ctl, pod: str, url: str, count: int) -> list[str]:
    """The bodies of `count` requests to `url` from `pod` (one `ctl exec`; failures print `FAIL`)."""
    script = f"for i in $(seq {count}); do timeout 5 wget -q -O - {url} || echo FAIL; done"
    return ctl("exec", pod, "--", "sh", "-c", script, timeout=300).stdout.split()


def _refused_in_pod(ctl: Ctl, pod: str, url: str) -> float | None:
    """Seconds `wget` in `pod` took to be refused (busybox `time`, measured in the pod); None if it was not."""
    r = ctl("exec", pod, "--", "sh", "-c", f"time timeout 5 wget -q -O - {url}", check=False)
    output = r.stderr + r.stdout
    real = re.search(r"real\s+(\d+)m\s*([\d.]+)s", output)
    if r.returncode == 0 or "refused" not in output.lower() or real is None:
        return None
    return int(real.group(1)) * 60 + float(real.group(2))


def _get_from_here(address: str, port: int) -> bytes | None:
    """The HTTP answer from `address:port` in this machine's root namespace; None if refused or failed."""
    try:
        with socket.create_connection((address, port), timeout=2) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            return data
    except OSError:
        return None


def _refused_from_here(address: str, port: int) -> float | None:
    started = time.monotonic()
    try:
        socket.create_connection((address, port), timeout=5).close()
    except ConnectionRefusedError:
        return time.monotonic() - started
    except OSError:
        return None
    return None


def _first_ready_line(watch: subprocess.Popen, deadline: float) -> float:
    """When `ctl get pods -w` first printed a pod Running and 1/1 ready (time.monotonic())."""
    shown: list[float] = []

    def read() -> None:
        for line in watch.stdout:
            if re.search(r"\s1/1\s+Running\s", line):
                shown.append(time.monotonic())
                return
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(max(0.0, deadline - time.monotonic()))
    if not shown:
        raise TimeoutError("`ctl get pods -w` showed no web pod Ready")
    return shown[0]


def _endpoint_ips(ctl: Ctl) -> set[str]:
    ep = json.loads(ctl("get", "endpoints", "web", "-o", "json").stdout)
    return {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}


def test_services_on_three_nodes(tmp_path: Path, image_archive: Path) -> None:
    from cli.locallan import Lan
    cluster_dir = (tmp_path / "cluster").resolve()
    lan = Lan.for_directory(cluster_dir)
    ctl = Ctl(tmp_path / "config")
    try:
        ctl("cluster", "up", "--dir", str(cluster_dir), "--port", str(free_port()), "--nodes", "3", timeout=300)
        ctl("image", "load", str(image_archive))
        ctl("apply", "-f", "-", stdin=MANIFESTS % {"image": IMAGE})
        web = wait_for(lambda: (lambda p: p if len(p) == 3 else None)(running_web_pods(ctl)), timeout=180,
                       what="3 web pods Ready")
        assert sorted(p["spec"]["nodeName"] for p in web) == list(NODES)          # one per node, by the scheduler
        web_ip = {p["metadata"]["name"]: p["status"]["podIP"] for p in web}
        clients = [f"client-{i}" for i in (1, 2, 3)]
        wait_for(lambda: all((p.get("status") or {}).get("phase") == "Running"
                             for p in ctl.pods() if p["metadata"]["name"] in clients)
                 and len([p for p in ctl.pods() if p["metadata"]["name"] in clients]) == 3,
                 timeout=120, what="the client pods Running")
        services = {s["metadata"]["name"]: s for s in json.loads(ctl("get", "svc", "-A", "-o", "json").stdout)["items"]}
        cluster_ip = services["web"]["spec"]["clusterIP"]
        node_port = services["web"]["spec"]["ports"][0]["nodePort"]
        kubernetes_ip = services["kubernetes"]["spec"]["clusterIP"]

        # From a pod on every node: by short name, full name and cluster IP; 30 requests reach all 3 backends.
        for client in clients:
            for url in ("http://web/", "http://web.default.svc.cluster.local/", f"http://{cluster_ip}/"):
                wait_for(lambda: _fetch_many(ctl, client, url, 1)[0] in web_ip, timeout=30,
                         what=f"{url} from {client}")
            answers = _fetch_many(ctl, client, "http://web/", 30)
            assert set(answers) == set(web_ip), (client, answers)

        # The NodePort on every node address, from this machine's root namespace.
        nodes = json.loads(ctl("get", "nodes", "-o", "json").stdout)["items"]
        addresses = [next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP") for n in nodes]
        assert len(addresses) == 3
        for address in addresses:
            answer = wait_for(lambda: _get_from_here(address, node_port), timeout=10, what=f"{address}:{node_port}")
            assert answer.split(b"\r\n\r\n", 1)[1].strip().decode() in web_ip, answer

        # DNS: the headless Service's pod IPs; kubernetes.default (busybox nslookup applies no search list
        # to dotted names, so its full name; ping's C-library lookup goes through the search list).
        assert wait_for(lambda: nslookup(ctl, "client-1", "web-headless") == set(web_ip.values()), timeout=15,
                        what="web-headless -> the 3 pod IPs")
        assert nslookup(ctl, "client-2", "kubernetes.default.svc.cluster.local") == {kubernetes_ip}
        pinged = ctl("exec", "client-3", "--", "ping", "-c", "1", "-W", "1", "kubernetes.default", check=False).stdout
        assert pinged.startswith(f"PING kubernetes.default ({kubernetes_ip})"), pinged

        # Service environment variables.
        for pod in ("client-1", next(iter(web_ip))):
            env = ctl("exec", pod, "--", "env").stdout
            assert "KUBERNETES_SERVICE_HOST=" in env and f"WEB_SERVICE_HOST={cluster_ip}" in env, env

        # A pod failing its readiness probe leaves the endpoints and gets no traffic.
        sick = sorted(web_ip)[0]
        assert _endpoint_ips(ctl) == set(web_ip.values())
        ctl("exec", sick, "--", "rm", "/tmp/ready")
        wait_for(lambda: _endpoint_ips(ctl) == {ip for n, ip in web_ip.items() if n != sick}, timeout=15,
                 what=f"{sick} out of the endpoints")
        assert f"{web_ip[sick]}:8080" not in ctl("get", "endpoints", "web").stdout
        for client in clients:
            answers = _fetch_many(ctl, client, f"http://{cluster_ip}/", 30)
            assert set(answers) == set(web_ip) - {sick}, (client, answers)

        # Scaled to 0: refused at once, in pods and on the NodePort.
        ctl("scale", "deployment", "web", "--replicas", "0")
        wait_for(lambda: ctl.pods("app=web") == [], timeout=60, what="no web pods")
        refused: list[float] = []
        for client in clients:
            took = wait_for(lambda: (lambda t: [t] if t is not None else None)(
                _refused_in_pod(ctl, client, f"http://{cluster_ip}/")), timeout=15, what=f"refused in {client}")
            assert took[0] < 1.0, took
            refused += took
        for address in addresses:
            took = wait_for(lambda: (lambda t: [t] if t is not None else None)(_refused_from_here(address, node_port)),
                            timeout=15, what=f"{address}:{node_port} refused")
            assert took[0] < 1.0, took
            refused += took

        # Scaled back: answered within 1 s of `ctl get pods -w` showing a pod Ready (NodePort watched from here).
        answered: list[float] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                if _get_from_here(addresses[0], node_port):
                    answered.append(time.monotonic())
                    return
                stop.wait(0.02)
        pods_watch = subprocess.Popen([sys.executable, "-m", "cli.main", "get", "pods", "-l", "app=web", "-w"],
                                      cwd=REPO, env={**ctl.env, "PYTHONUNBUFFERED": "1"}, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            ctl("scale", "deployment", "web", "--replicas", "3")
            shown_ready = _first_ready_line(pods_watch, deadline=time.monotonic() + 120)
            wait_for(lambda: answered, timeout=10, what="the NodePort to answer again")
        finally:
            stop.set()
            watcher.join(5)
            stop_process(pods_watch)
        assert answered[0] - shown_ready < 1.0, answered[0] - shown_ready
        print(f"refused after scale to 0: max {max(refused):.3f} s; answered {answered[0] - shown_ready:+.3f} s "
              "from ctl get -w showing a pod Ready")
        wait_for(lambda: _fetch_many(ctl, "client-2", f"http://{cluster_ip}/", 1)[0] != "FAIL", timeout=5,
                 what="the cluster IP to answer again from a pod")
    finally:
        ctl("cluster", "down", "--dir", str(cluster_dir), check=False, timeout=180)
    tag_parts = [f"skiff-{lan.tag}-", f"skb{lan.tag}", f"skv{lan.tag}"]
    assert leftovers(cluster_dir, tag_parts, f"skiff-{hashlib.sha256(str(cluster_dir).encode()).hexdigest()[:8]}") == []
