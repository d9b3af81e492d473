"""Node failover on real machines: `bench/failover.py --vm` (root, qemu, the VM bed's kernel).

Two guests of the VM test bed (tests/vm/machines.py: own kernels, pure cgroup v2, on a LAN
bridge of this machine) each run a real agent joined with a token to a control plane on this
machine (as tests/vm/test_two_machine_cluster.py does); a Deployment of 2 pods spreads over
them. Each trial pulls the plug on the guest running the most of its pods (qemu SIGKILLed) and
records, from that moment, as a watch of the API server saw it:

- notready: the node's Ready condition became Unknown,
- tainted:  it carried node.kubernetes.io/unreachable:NoExecute,
- rebound:  every replica was bound to the other (live) node again (the goal: <= 15 s),
- running:  ... and Running there (its agent started the containers).

Where the surviving agent's part (rebound -> running) goes comes from its own Events on the
replacement pods, on the guest's clock (offset to this machine's measured before each kill,
over the command channel; error = half the round trip, printed): `pulled` is the last
"Pulled" (sandbox, pod network, volumes and token done; the image was already there) and
`started` the last "Started" (the containers run). Running - started is the status report
reaching the API server and its watch.

Then the guest is booted again, its agent rejoins (its certificate died with its RAM) and the
image is loaded into it, so the next trial has a live node to fail over to; the next victim is
again the node with the most pods (after the first trial: all of them). Nothing is left
behind: the guests are powered off, the bed's bridge and taps removed, the control plane stopped.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))     # the VM bed and the control-plane process helpers

from api.nodelease import parse_time  # noqa: E402
from bench.common import KUBECONFIG_ENV, connect, machine_info  # noqa: E402
from bench.failover import GOAL_SECONDS, failover_facts, live, mark_reached, running_by_node, until  # noqa: E402
from controlplane.client.informer import Informer  # noqa: E402
from procs import ControlPlane, Ctl, free_port  # noqa: E402
from vm.machines import Bed, Machine, skip_reason  # noqa: E402
from vm.test_two_machine_cluster import JOIN_TIMEOUT, POD_CIDR, WEB, nodes_ready, wait  # noqa: E402

MILESTONES = ("notready", "tainted", "rebound", "running")
AGENT_STEPS = {"pulled": "Pulled", "started": "Started"}   # step -> the Event reason that marks it
# A revived guest's agent Ready: 55-170 s seen; over 300 s once at load 17-20 (the bench then lost
# its remaining trials). Not a measured figure, only how long to wait for the next trial.
REJOIN_TIMEOUT = 2 * JOIN_TIMEOUT
REPLICAS = 2


def build_image(out: Path) -> Path:
    subprocess.run([sys.executable, str(REPO / "deploy" / "build-test-image.py"), "--out", str(out / "layout"),
                    "--archive", str(out / "busybox.tar")], check=True, capture_output=True)
    return out / "busybox.tar"


class VmCluster:
    """The bed's guests with agents joined to a control plane on this machine."""

    def __init__(self, bed: Bed, cp: ControlPlane, join: list[str], image: Path) -> None:
        self.bed, self.cp, self.join, self.image = bed, cp, join, image
        self.ctl = Ctl(cp.admin_config)
        self.agents: dict[Machine, int] = {}

    def start_agent(self, vm: Machine) -> float:
        started = time.monotonic()
        self.agents[vm] = vm.start_agent(self.join, cluster_cidr=POD_CIDR)
        wait(lambda: nodes_ready(self.ctl, {m.name for m in self.bed.machines}), timeout=REJOIN_TIMEOUT,
             what=f"{vm.name} Ready", logs_of=(vm,), agents={vm: self.agents[vm]})
        self.ctl("image", "load", "--node", vm.name, str(self.image), timeout=300)
        return time.monotonic() - started

    def revive(self, vm: Machine) -> dict[str, float]:
        boot = vm.boot()
        return {"boot_seconds": round(boot, 1), "agent_ready_seconds": round(self.start_agent(vm), 1)}


def clock_offset(vm: Machine) -> tuple[float, float]:
    """The guest's wall clock minus this machine's, and the error bound (half the round trip)."""
    best: tuple[float, float] | None = None
    for _ in range(3):
        before = time.time()
        guest = float(vm.run(["date", "+%s.%N"], timeout=30).check().stdout)
        after = time.time()
        estimate = (guest - (before + after) / 2, (after - before) / 2)
        if best is None or estimate[1] < best[1]:
            best = estimate
    assert best is not None
    return best


def agent_steps(events: Informer, uids: set[str], killed_at: float, offset: float) -> dict[str, float]:
    """Seconds from the power-off to the last `Pulled` / `Started` Event of the pods `uids`
    (the surviving agent's clock, corrected by `offset`); a step missing is left out."""
    out: dict[str, float] = {}
    for step, reason in AGENT_STEPS.items():
        stamps = [parse_time(e.get("lastTimestamp")) for e in events.store.values()
                  if e.get("reason") == reason and (e.get("involvedObject") or {}).get("uid") in uids]
        stamps = [t for t in stamps if t is not None]
        if len(stamps) >= len(uids):
            out[step] = round(max(stamps) - offset - killed_at, 2)
    return out


async def trials(vc: VmCluster, count: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`count` power-offs timed; and the NodeNotReady events per node next to the power-offs."""
    async with connect(vc.cp.address) as client:
        pods = Informer(client, "pods", namespace="default", label_selector="app=web")
        nodes = Informer(client, "nodes")
        events = Informer(client, "events", namespace="default")
        tasks = [asyncio.create_task(i.run()) for i in (pods, nodes, events)]
        try:
            results = []
            for trial in range(count):
                counts = await until(lambda: running_by_node(pods, REPLICAS), timeout=300,
                                     what=f"{REPLICAS} web pods Running")
                victim_name = max(counts, key=lambda n: counts[n])
                victim = next(m for m in vc.bed.machines if m.name == victim_name)
                survivor = next(m for m in vc.bed.machines if m.name != victim_name)
                offset, offset_error = await asyncio.to_thread(clock_offset, survivor)
                before = {p["metadata"]["uid"] for p in pods.store.values()}
                loop = asyncio.get_running_loop()
                seen: dict[str, float] = {}
                killed_at = time.time()
                killed = loop.time()
                await asyncio.to_thread(victim.power_off)

                def check() -> bool:
                    facts = failover_facts(nodes.get("", victim_name), list(pods.store.values()), victim_name,
                                           REPLICAS)
                    mark_reached(seen, facts, loop.time() - killed)
                    return all(name in seen for name in MILESTONES)
                await until(check, timeout=300, what=f"the pods of {victim_name} to run elsewhere")
                replacements = {p["metadata"]["uid"] for p in pods.store.values()
                                if live(p) and p["metadata"]["uid"] not in before}
                try:    # the agent's Events are written in the background: give them a moment
                    steps = await until(lambda: (lambda s: s if len(s) == len(AGENT_STEPS) else None)(
                        agent_steps(events, replacements, killed_at, offset)), timeout=30,
                        what="the surviving agent's Pulled/Started events")
                except TimeoutError:
                    steps = agent_steps(events, replacements, killed_at, offset)
                result = {"victim": victim_name, "pods_on_victim": counts[victim_name],
                          **{k: round(seen[k], 2) for k in MILESTONES},
                          "agent": {**steps, "clock_offset": round(offset, 3),
                                    "clock_error": round(offset_error, 3)}}
                print(f"trial {trial + 1}: " + ", ".join(f"{k} {v}" for k, v in result.items()), flush=True)
                result.update(await asyncio.to_thread(vc.revive, victim))
                print(f"  {victim_name} back: boot {result['boot_seconds']}s, agent Ready "
                      f"{result['agent_ready_seconds']}s", flush=True)
                results.append(result)
            # A live node wrongly declared NotReady (its agent too slow to renew under load)
            # would show here as more NodeNotReady events than power-offs of that node.
            not_ready: dict[str, int] = {}
            for e in events.store.values():
                if e.get("reason") == "NodeNotReady":
                    name = (e.get("involvedObject") or {}).get("name", "")
                    not_ready[name] = not_ready.get(name, 0) + int(e.get("count") or 1)
            powered_off: dict[str, int] = {}
            for r in results:
                powered_off[r["victim"]] = powered_off.get(r["victim"], 0) + 1
            return results, {"node_not_ready_events": not_ready, "power_offs": powered_off}
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {name: {"median": round(statistics.median([r[name] for r in results]), 2),
                                  "max": round(max(r[name] for r in results), 2)} for name in MILESTONES}
    for step in AGENT_STEPS:
        values = [r["agent"][step] for r in results if step in r.get("agent", {})]
        if len(values) == len(results):
            out[f"agent_{step}"] = {"median": round(statistics.median(values), 2), "max": round(max(values), 2)}
    out["goal_seconds"] = GOAL_SECONDS
    out["goal_met"] = out["running"]["max"] <= GOAL_SECONDS
    return out


def run(count: int) -> dict[str, Any]:
    """Boot the bed, join the agents, time `count` power-offs; everything torn down on return."""
    reason = skip_reason()
    if reason:
        raise SystemExit(f"error: --vm cannot run here: {reason}")
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="skiff-bench-vm-") as tmp, Bed() as bed:
        image = build_image(Path(tmp))
        started = time.monotonic()
        vms = bed.boot(2, memory_mb=1024)
        booted = time.monotonic() - started
        host = bed.lan.host_address
        port = free_port()
        cp = ControlPlane(Path(tmp) / "cp", port=port, extra_args=[
            "--listen", f"127.0.0.1:{port},{host}:{port}", "--cluster-cidr", POD_CIDR])
        cp.start(timeout=60)
        os.environ[KUBECONFIG_ENV] = str(cp.admin_config)
        try:
            vc = VmCluster(bed, cp, cp.join_args(server=f"{host}:{port}"), image)
            for vm in vms:
                vc.agents[vm] = vm.start_agent(vc.join, cluster_cidr=POD_CIDR)
            wait(lambda: nodes_ready(vc.ctl, {vm.name for vm in vms}), timeout=JOIN_TIMEOUT,
                 what="both nodes Ready", logs_of=tuple(vms), agents=vc.agents)
            vc.ctl("image", "load", str(image), timeout=300)
            vc.ctl("apply", "-f", "-", stdin=WEB)
            print(f"2 guests booted in {booted:.0f}s; agents joined; Deployment of {REPLICAS} applied", flush=True)
            results, flaps = asyncio.run(trials(vc, count))
        finally:
            cp.stop()
            # The node lifecycle controller's decisions, for the record (and for a run that failed).
            decisions = [line for line in cp.log_path.read_text(errors="replace").splitlines()
                         if "nodelifecycle" in line
                         and any(word in line for word in ("no heartbeat", "taints", "evicting"))]
            (REPO / "bench" / "results").mkdir(exist_ok=True)
            (REPO / "bench" / "results" / "failover_vm_nodelifecycle.log").write_text(
                "\n".join(decisions) + "\n")
    return {"machine": info, "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "guests": 2, "replicas": REPLICAS, "trials": results, **flaps, "summary": summarise(results)}
