"""A cluster across real machines: the control plane on this machine, an agent in each of two
guests (own kernel, pure cgroup v2), joined over the LAN bridge.

Driven with `ctl` as a user would: both nodes register and go Ready; a Deployment spreads over
them; a pod on one machine fetches a page from a pod on the other by pod IP (host-gw routes
over the LAN); one machine is powered off (qemu SIGKILLed) and its pod is recreated on the other
within the failover goal; powered on again, its agent rejoins and the node is Ready and
schedulable again; the other machine is then cut off the LAN — its pods are replaced — and,
once the link is back, its agent removes the containers of the pods that are gone.

Agents join as an operator would have them join: `skiff-controlplane token create` prints
`--server --token --ca-cert-hash` (TLS, a node certificate per machine).
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from procs import REPO, ControlPlane, Ctl, free_port, http_get
from vm.machines import Machine

IMAGE = "skiff.local/busybox:1.35"
POD_CIDR = "198.19.0.0/16"
FAILOVER_GOAL_SECONDS = 15.0
JOIN_TIMEOUT = 300          # guest boots are done; this is an agent's start on TCG (imports over 9p)

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
      containers:
        - name: httpd
          image: %s
          command: ["sh", "-c", "mkdir -p /tmp/www && echo hello from $POD_NAME > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          ports: [{containerPort: 8080}]
          resources: {requests: {cpu: 10m, memory: 8Mi}}
          readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 2}
""" % IMAGE


def ready(obj: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def web_pods(ctl: Ctl) -> list[dict]:
    """Live (not terminating) web pods that are Running and Ready, with a pod IP."""
    return [p for p in ctl.items("pods", "-l", "app=web")
            if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running"
            and p["status"].get("podIP") and ready(p)]


def nodes_ready(ctl: Ctl, names: set[str]) -> bool:
    nodes = {n["metadata"]["name"]: n for n in ctl.items("nodes")}
    return all(name in nodes and ready(nodes[name]) and not nodes[name]["spec"].get("taints")
               for name in names)


def scheduled_at(pod: dict) -> float:
    """The pod's PodScheduled=True time, as a Unix time."""
    stamp = next(c["lastTransitionTime"] for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def httpd_processes(machine: Machine) -> int:
    return len(machine.run(["pgrep", "-f", "^httpd -f -p 8080"], timeout=60).stdout.split())


@pytest.fixture(scope="module")
def image_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("image")
    subprocess.run([sys.executable, str(REPO / "deploy" / "build-test-image.py"), "--out", str(out / "layout"),
                    "--archive", str(out / "busybox.tar")], check=True, capture_output=True)
    return out / "busybox.tar"


def test_cluster_of_two_guests_spreads_fails_over_and_rejoins(machines, vm_bed, tmp_path: Path,
                                                              image_archive: Path) -> None:
    vm1, vm2 = machines(2)
    host = vm_bed.lan.host_address
    port = free_port()
    cp = ControlPlane(tmp_path / "cp", port=port, extra_args=[
        "--listen", f"127.0.0.1:{port},{host}:{port}", "--cluster-cidr", POD_CIDR])
    cp.start(timeout=60)
    ctl = Ctl(cp.admin_config)
    try:
        join = cp.join_args(server=f"{host}:{port}")        # a bootstrap token, TLS from the first byte
        joined = time.monotonic()
        agents = {vm: vm.start_agent(join, cluster_cidr=POD_CIDR) for vm in (vm1, vm2)}
        wait(lambda: nodes_ready(ctl, {"vm1", "vm2"}), timeout=JOIN_TIMEOUT, what="nodes vm1 and vm2 Ready",
             logs_of=(vm1, vm2), agents=agents)
        print(f"\nagents started to both nodes Ready: {time.monotonic() - joined:.1f}s")
        nodes = {n["metadata"]["name"]: n for n in ctl.items("nodes")}
        assert {n: next(a["address"] for a in nodes[n]["status"]["addresses"] if a["type"] == "InternalIP")
                for n in nodes} == {"vm1": vm1.address, "vm2": vm2.address}
        assert "cgroup v2" in nodes["vm1"]["status"]["nodeInfo"]["containerRuntimeVersion"]

        ctl("image", "load", str(image_archive), timeout=300)
        ctl("apply", "-f", "-", stdin=WEB)
        started = time.monotonic()
        pods = wait(lambda: (lambda ps: ps if len(ps) == 2 else None)(web_pods(ctl)), timeout=300,
                        what="2 web pods Running and Ready", logs_of=(vm1, vm2), agents=agents)
        print(f"Deployment applied to 2 pods Ready: {time.monotonic() - started:.1f}s")
        by_node = {p["spec"]["nodeName"]: p for p in pods}
        assert sorted(by_node) == ["vm1", "vm2"], "the Deployment's pods spread over the two machines"

        # pod to pod across machines, both ways, by pod IP
        for src, dst in (("vm1", "vm2"), ("vm2", "vm1")):
            target = by_node[dst]
            assert http_get(ctl, by_node[src]["metadata"]["name"], target["status"]["podIP"], seconds=10).strip() == \
                f"hello from {target['metadata']['name']}"

        # power vm2 off: its pod is recreated and bound on vm1 within the failover goal
        victim = by_node["vm2"]["metadata"]["name"]
        died, died_wall = time.monotonic(), time.time()
        vm2.power_off()

        def replaced() -> list[dict] | None:
            live = [p for p in ctl.items("pods", "-l", "app=web") if not p["metadata"].get("deletionTimestamp")
                    and p["spec"].get("nodeName") == "vm1"]
            return live if len(live) == 2 and victim not in {p["metadata"]["name"] for p in live} else None
        replacement = next(p for p in wait(replaced, timeout=90, interval=0.2, what="vm2's pod recreated and bound on vm1")
                           if p["metadata"]["name"] != by_node["vm1"]["metadata"]["name"])
        seen = time.monotonic() - died
        # when the API server bound it (its clock is this machine's; the stamp is to the second)
        rebound = scheduled_at(replacement) - died_wall
        wait(lambda: len([p for p in web_pods(ctl) if p["spec"]["nodeName"] == "vm1"]) == 2,
             timeout=180, what="2 web pods Ready on vm1", logs_of=(vm1,), agents={vm1: agents[vm1]})
        running = time.monotonic() - died
        print(f"failover: vm2 powered off -> its pod bound on vm1 after {rebound:.0f}s (PodScheduled, +-1 s; "
              f"seen by ctl after {seen:.1f}s), Ready after {running:.1f}s")

        # power vm2 on again: its agent rejoins, the node is Ready and untainted
        boot = vm2.boot()
        agents[vm2] = vm2.start_agent(join, cluster_cidr=POD_CIDR)     # its certificate died with its RAM
        back = time.monotonic()
        wait(lambda: nodes_ready(ctl, {"vm1", "vm2"}), timeout=JOIN_TIMEOUT, what="vm2 Ready again",
             logs_of=(vm2,), agents={vm2: agents[vm2]})
        print(f"vm2 powered on: boot {boot:.1f}s, agent start to Ready {time.monotonic() - back:.1f}s")
        ctl("image", "load", "--node", "vm2", str(image_archive), timeout=300)

        # cut vm1 off: its pods are replaced on vm2 while its containers run on; back on the
        # LAN, vm1's agent finds those pods gone and removes their containers
        assert httpd_processes(vm1) == 2
        vm1.partition()
        wait(lambda: len([p for p in web_pods(ctl) if p["spec"]["nodeName"] == "vm2"]) == 2,
             timeout=300, what="2 web pods Ready on vm2", logs_of=(vm2,), agents=agents)
        assert httpd_processes(vm1) == 2, "a cut-off machine keeps running its containers (no fencing)"
        vm1.heal()
        wait(lambda: httpd_processes(vm1) == 0, timeout=180, what="vm1's agent to remove the stale containers",
             logs_of=(vm1,), agents=agents)
        wait(lambda: nodes_ready(ctl, {"vm1", "vm2"}), timeout=120, what="vm1 Ready again")

        assert rebound <= FAILOVER_GOAL_SECONDS + 1.0, f"vm2's pod bound elsewhere after {rebound:.0f}s (goal 15 s)"
    finally:
        for vm in (vm1, vm2):       # pulling the plug is a clean slate: everything lived in RAM
            vm.power_off()
        cp.stop()


def wait(condition, *, timeout: float, what: str, logs_of: tuple[Machine, ...] = (), interval: float = 1.0,
         agents: dict[Machine, int] | None = None):
    """Poll `condition` until truthy; fail at the deadline, or at once when one of `agents`
    (guest -> agent PID) has exited, with the agent logs of `logs_of` in the failure."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - ctl may fail while a node is down; retried
            last = exc
        dead = [vm.name for vm, pid in (agents or {}).items() if vm.run(f"kill -0 {pid}", timeout=60).rc != 0]
        if dead or time.monotonic() > deadline:
            problem = f"the agent in {', '.join(dead)} exited" if dead else f"timed out after {timeout}s"
            logs = []
            for vm in logs_of:
                try:
                    logs.append(f"--- {vm.name} agent log\n{vm.agent_log(40)}")
                except Exception as err:  # noqa: BLE001 - the log is a diagnostic only
                    logs.append(f"--- {vm.name} agent log: ({err})")
            raise AssertionError("\n".join([f"{problem} waiting for {what}"
                                             + (f" (last error: {last!r})" if last else ""), *logs]))
        time.sleep(interval)
