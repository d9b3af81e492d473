"""Cluster DNS on a local cluster (`ctl cluster up --nodes 2`), used as a user would.

Pods resolve, through the resolv.conf the agent writes and their node's own DNS server:
a Service by its short name and its full name (its cluster IP; `wget http://web/` answers
through the service proxy), a headless Service (its
ready pods' IPs), a pod's `<hostname>.<subdomain>` name, `kubernetes.default`, and a name
outside the cluster, answered by a fake upstream resolver the test runs in a network
namespace of its own on the cluster's LAN (`ctl cluster up --dns-upstream`). Also the
resolv.conf of each dnsPolicy. Everything through `ctl`; `cluster down` leaves nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from procs import free_port, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dnsobjects import FakeUpstream  # noqa: E402
from test_multinode_network import Ctl, image_archive, leftovers, nslookup  # noqa: E402,F401 - image_archive: a fixture

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: node network namespaces, containers")]

IMAGE = "skiff.local/busybox:1.35"

# hostNetwork is beyond Pod Security's baseline level, the default of a namespace: applied first,
# as every object of one apply is checked (dry run) before any is written.
PRIVILEGED_DEFAULT = """
apiVersion: v1
kind: Namespace
metadata:
  name: default
  labels: {pod-security.kubernetes.io/enforce: privileged}
"""

MANIFESTS = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
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
      containers:
        - name: httpd
          image: %(image)s
          command: ["sh", "-c", "mkdir -p /tmp/www && echo hello > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
          ports: [{containerPort: 8080}]
          readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
""" + "".join(f"""---
apiVersion: v1
kind: Pod
metadata: {{name: db-{i}, labels: {{app: db}}}}
spec:
  hostname: db-{i}
  subdomain: db
  terminationGracePeriodSeconds: 1
  containers:
    - name: sh
      image: %(image)s
      command: ["sleep", "3600"]
""" for i in range(2)) + """---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: node-1
  terminationGracePeriodSeconds: 1
  containers:
    - name: sh
      image: %(image)s
      command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  nodeName: node-2
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  terminationGracePeriodSeconds: 1
  containers:
    - name: sh
      image: %(image)s
      command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata: {name: custom}
spec:
  dnsPolicy: "None"
  dnsConfig: {nameservers: ["192.0.2.53"], searches: ["example.org"], options: [{name: ndots, value: "2"}]}
  terminationGracePeriodSeconds: 1
  containers:
    - name: sh
      image: %(image)s
      command: ["sleep", "3600"]
"""


class UpstreamNamespace:
    """A fake upstream resolver in its own network namespace, plugged into the cluster's LAN."""

    def __init__(self, name: str, bridge: str, address: str, link: str) -> None:
        self.name, self.bridge, self.address, self.link = name, bridge, address, link
        self.loop = asyncio.new_event_loop()
        self.upstream = FakeUpstream(host=address, port=53)
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "link", "add", self.link, "type", "veth", "peer", "name", "eth0",
                        "netns", self.name], check=True)
        subprocess.run(["ip", "link", "set", self.link, "master", self.bridge, "up"], check=True)
        for args in (["addr", "add", f"{self.address}/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                     ["link", "set", "lo", "up"]):
            subprocess.run(["ip", "-n", self.name, *args], check=True)
        ready = threading.Event()

        def run() -> None:
            from agent.network.netns import setns
            fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
            try:
                setns(fd)
            finally:
                os.close(fd)
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.upstream.start())
            ready.set()
            self.loop.run_forever()
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10), "the fake upstream did not start"

    def stop(self) -> None:
        if self.thread is not None:
            asyncio.run_coroutine_threadsafe(self.upstream.close(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        # The host end first: deleting a namespace removes its veths only later, in the background.
        subprocess.run(["ip", "link", "del", self.link], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def test_pods_resolve_services_pods_and_outside_names(tmp_path: Path, image_archive: Path) -> None:
    from cli.locallan import Lan
    cluster_dir = (tmp_path / "cluster").resolve()
    lan = Lan.for_directory(cluster_dir)             # the LAN `up` will make: the upstream joins it
    upstream_ip = str(lan.subnet[250])
    ctl = Ctl(tmp_path / "config")
    upstream = UpstreamNamespace(f"skiff-{lan.tag}-up", lan.bridge, upstream_ip, f"skv{lan.tag}up")
    try:
        r = ctl("cluster", "up", "--dir", str(cluster_dir), "--port", str(free_port()), "--nodes", "2",
                "--dns-upstream", upstream_ip)
        assert f"on LAN {lan.subnet}" in r.stdout, r.stdout
        upstream.start()
        ctl("image", "load", str(image_archive))
        ctl("apply", "-f", "-", stdin=PRIVILEGED_DEFAULT)
        ctl("apply", "-f", "-", stdin=MANIFESTS % {"image": IMAGE})

        def ready_pods() -> list[dict] | None:
            pods = ctl.pods()
            ok = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
                  and any(c.get("type") == "Ready" and c.get("status") == "True"
                          for c in p["status"].get("conditions") or [])]
            return ok if len(ok) == len(pods) == 7 else None
        pods = {p["metadata"]["name"]: p for p in wait_for(ready_pods, timeout=120, what="7 pods Ready")}
        services = {s["metadata"]["name"]: s for s in json.loads(ctl("get", "svc", "-A", "-o", "json").stdout)["items"]}
        web_ip = services["web"]["spec"]["clusterIP"]
        kubernetes_ip = services["kubernetes"]["spec"]["clusterIP"]
        db_ips = {pods["db-0"]["status"]["podIP"], pods["db-1"]["status"]["podIP"]}

        nodes = {n["metadata"]["name"]: n for n in json.loads(ctl("get", "nodes", "-o", "json").stdout)["items"]}
        gateway = {name: str(ipaddress.ip_network(n["spec"]["podCIDR"])[1]) for name, n in nodes.items()}
        assert ctl("exec", "client", "--", "cat", "/etc/resolv.conf").stdout == (
            f"nameserver {gateway['node-1']}\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n"
            "options ndots:5\n")
        assert ctl("exec", "hostnet", "--", "cat", "/etc/resolv.conf").stdout.startswith(
            f"nameserver {gateway['node-2']}\nsearch default.svc.cluster.local")
        assert ctl("exec", "custom", "--", "cat", "/etc/resolv.conf").stdout == (
            "nameserver 192.0.2.53\nsearch example.org\noptions ndots:2\n")

        for pod in ("client", "hostnet"):
            assert wait_for(lambda: nslookup(ctl, pod, "web") == {web_ip}, timeout=15, what=f"web from {pod}")
            assert nslookup(ctl, pod, "web.default.svc.cluster.local") == {web_ip}
        assert wait_for(lambda: nslookup(ctl, "client", "db") == db_ips, timeout=15, what="headless db")
        assert nslookup(ctl, "client", "db-0.db.default.svc.cluster.local") == {pods["db-0"]["status"]["podIP"]}
        # busybox's nslookup (since 1.29) applies the search list only to names without a dot, so
        # `nslookup kubernetes.default` asks for "kubernetes.default." as it is - in Kubernetes too
        # (its docs use busybox:1.28 for this). The C library's resolver honours ndots:5: ping's
        # lookup goes through the search list.
        assert nslookup(ctl, "client", "kubernetes.default.svc.cluster.local") == {kubernetes_ip}
        pinged = ctl("exec", "client", "--", "ping", "-c", "1", "-W", "1", "kubernetes.default", check=False).stdout
        assert pinged.startswith(f"PING kubernetes.default ({kubernetes_ip})"), pinged
        assert nslookup(ctl, "client", "example.org") == {"192.0.2.1"}
        assert nslookup(ctl, "client", "nope.default.svc.cluster.local") == set()
        # By name, through the node's service proxy: the C library resolves "web" via the search list.
        def fetched() -> bool:
            r = ctl("exec", "client", "--", "timeout", "5", "wget", "-q", "-O", "-", "http://web/", check=False)
            return r.returncode == 0 and r.stdout.strip() == "hello"
        wait_for(fetched, timeout=20, what="http://web/ from a pod")
        # The Service goes: its name goes with it.
        ctl("delete", "svc", "web")
        assert wait_for(lambda: nslookup(ctl, "client", "web.default.svc.cluster.local") == set(), timeout=15,
                        what="web's name gone")
    finally:
        ctl("cluster", "down", "--dir", str(cluster_dir), check=False, timeout=180)
        upstream.stop()
    tag_parts = [f"skiff-{lan.tag}-", f"skb{lan.tag}", f"skv{lan.tag}"]
    assert leftovers(cluster_dir, tag_parts, f"skiff-{hashlib.sha256(str(cluster_dir).encode()).hexdigest()[:8]}") == []
