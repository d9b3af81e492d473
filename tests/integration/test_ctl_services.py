"""ctl around Services: `get all`, `get endpoints|ep|endpointslices|eps`, PORT(S) and CLUSTER-IP
columns, `describe svc` with its Endpoints lines, and `expose`."""

from __future__ import annotations

import ipaddress
import json

OBJECTS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {tier: front}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: busybox, ports: [{containerPort: 8080, name: http}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, labels: {app: db}}
spec:
  containers: [{name: c, image: busybox}]
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
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
"""

SLICE = """\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc12, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- {addresses: [198.19.0.5], conditions: {ready: true}}
- {addresses: [198.19.0.6], conditions: {ready: true}}
- {addresses: [198.19.0.7], conditions: {ready: false}}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web}
subsets:
- addresses: [{ip: 198.19.0.5}, {ip: 198.19.0.6}, {ip: 198.19.0.8}, {ip: 198.19.0.9}]
  notReadyAddresses: [{ip: 198.19.0.7}]
  ports: [{name: http, port: 8080}]
"""


def rows(text: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in text.splitlines()[1:] if line.strip()}


def test_get_services_all_and_endpoints(ctl, namespace):
    r = ctl("apply", "-f", "-", "-n", namespace, input=OBJECTS + "---\n" + SLICE)
    assert r.returncode == 0, r.stderr
    web = json.loads(ctl("get", "svc", "web", "-n", namespace, "-o", "json").stdout)
    node_port = web["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    ipaddress.ip_address(web["spec"]["clusterIP"])

    r = ctl("get", "svc", "-n", namespace)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    table = rows(r.stdout)
    assert table["web"][1:5] == ["NodePort", web["spec"]["clusterIP"], "<none>", f"80:{node_port}/TCP"]
    assert table["db"][1:5] == ["ClusterIP", "None", "<none>", "5432/TCP"]

    r = ctl("get", "all", "-n", namespace)
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines() if line.strip() and "/" in line.split()[0]]
    assert names == ["pod/db-0", "service/db", "service/web", "deployment.apps/web"]

    for kind in ("endpoints", "ep"):
        r = ctl("get", kind, "-n", namespace)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0].split() == ["NAME", "ENDPOINTS", "AGE"]
        assert rows(r.stdout)["web"][1:4] == ["198.19.0.5:8080,198.19.0.6:8080,198.19.0.8:8080", "+", "1"]
    for kind in ("endpointslices", "eps", "endpointslice.discovery.k8s.io"):
        r = ctl("get", kind, "-n", namespace)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
        assert rows(r.stdout)["web-abc12"][1:4] == ["IPv4", "8080", "198.19.0.5,198.19.0.6,198.19.0.7"]


def test_describe_service(ctl, namespace):
    assert ctl("apply", "-f", "-", "-n", namespace, input=OBJECTS + "---\n" + SLICE).returncode == 0
    web = json.loads(ctl("get", "svc", "web", "-n", namespace, "-o", "json").stdout)
    r = ctl("describe", "svc", "web", "-n", namespace)
    assert r.returncode == 0, r.stderr
    lines = [" ".join(line.split()) for line in r.stdout.splitlines()]
    ip, node_port = web["spec"]["clusterIP"], web["spec"]["ports"][0]["nodePort"]
    for expected in ("Name: web", f"Namespace: {namespace}", "Selector: app=web", "Type: NodePort",
                     "IP Family Policy: SingleStack", "IP Families: IPv4", f"IP: {ip}", f"IPs: {ip}",
                     "Port: http 80/TCP", "TargetPort: http/TCP", f"NodePort: http {node_port}/TCP",
                     "Endpoints: 198.19.0.5:8080,198.19.0.6:8080", "Session Affinity: None",
                     "External Traffic Policy: Cluster", "Internal Traffic Policy: Cluster", "Events: <none>"):
        assert expected in lines, (expected, r.stdout)
    r = ctl("describe", "svc", "db", "-n", namespace)
    lines = [" ".join(line.split()) for line in r.stdout.splitlines()]
    assert "IP: None" in lines and "Port: <unset> 5432/TCP" in lines and "Endpoints: <none>" in lines


def test_expose(ctl, namespace):
    assert ctl("apply", "-f", "-", "-n", namespace, input=OBJECTS).returncode == 0
    r = ctl("expose", "deployment", "web", "--port", "8000", "--target-port", "http", "--name", "web-2",
            "--type", "NodePort", "-n", namespace)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "service/web-2 exposed\n"
    svc = json.loads(ctl("get", "svc", "web-2", "-n", namespace, "-o", "json").stdout)
    assert svc["spec"]["selector"] == {"app": "web"} and svc["metadata"]["labels"] == {"tier": "front"}
    port, = svc["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["protocol"]) == (8000, "http", "TCP")
    assert svc["spec"]["type"] == "NodePort" and port["nodePort"] >= 30000

    # Without --port, the containers' ports; a pod's labels are the selector.
    r = ctl("expose", "deploy/web", "--name", "web-3", "-n", namespace)
    assert r.returncode == 0, r.stderr
    svc = json.loads(ctl("get", "svc", "web-3", "-n", namespace, "-o", "json").stdout)
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(8080, 8080)]
    r = ctl("expose", "pod", "db-0", "--port", "5432", "--protocol", "TCP", "-n", namespace)
    assert r.returncode == 0, r.stderr
    assert json.loads(ctl("get", "svc", "db-0", "-n", namespace, "-o", "json").stdout)["spec"]["selector"] == \
        {"app": "db"}
    # A Service of a Service; then a name already taken.
    assert ctl("expose", "svc", "web", "--name", "web-4", "-n", namespace).returncode == 0
    r = ctl("expose", "deployment", "web", "--port", "80", "-n", namespace)
    assert r.returncode == 1 and 'services "web" already exists' in r.stderr and "Traceback" not in r.stderr
    r = ctl("expose", "pod", "db-0", "-n", namespace, "--name", "x")
    assert r.returncode == 1 and "couldn't find port via --port flag or introspection" in r.stderr


def test_service_bad_input_through_ctl(ctl, namespace):
    r = ctl("apply", "-f", "-", "-n", namespace, input="""\
apiVersion: v1
kind: Service
metadata: {name: bad}
spec:
  selector: {app: x}
""")
    assert r.returncode == 1 and "spec.ports: field required" in r.stderr and "Traceback" not in r.stderr
    r = ctl("apply", "-f", "-", "-n", namespace, input="""\
apiVersion: v1
kind: Service
metadata: {name: bad}
spec:
  clusterIP: 192.0.2.10
  ports: [{port: 80}]
""")
    assert r.returncode == 1 and 'spec.clusterIP: Invalid value: "192.0.2.10": provided IP is not in the valid ' \
                                 'range' in r.stderr
