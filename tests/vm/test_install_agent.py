"""deploy/install.sh's agent role on a real machine: a guest joins the control plane on this
machine the way an operator's worker would, and the joined node runs a pod.

The control plane runs here on the LAN bridge's address (as in test_two_machine_cluster).
In the guest, `deploy/install.sh --role agent --server --token --ca-cert-hash` (what
`skiff-controlplane token create` prints) installs into a directory (`--root`, `--no-start`:
the guest runs no systemd); the repo and its venv are this machine's, read-only over 9p, so
the script must neither apt-get nor pip there. The guest is given a second, "NAT" interface
that holds the default route (the Vagrant pitfall): the node IP install.sh picks must still be
the LAN address, the one that routes to the server. The agent is then started with the
installed unit's ExecStart (tests/deploy_units.exec_start, run in the guest where the unit
and its EnvironmentFile are), and the node goes Ready and runs a pod, as `ctl` shows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from procs import REPO, ControlPlane, free_port
from vm.machines import AGENT_LOG, Machine
from vm.test_two_machine_cluster import IMAGE, Ctl, image_archive, nodes_ready, wait  # noqa: F401 - a fixture

ROOT = "/tmp/skiff-install"         # in the guest's tmpfs: install.sh writes only under it
NAT = ("skiffnat0", "198.19.255.15/24", "198.19.255.2")   # a dummy link with the default route
JOIN_TIMEOUT = 300

POD = """
apiVersion: v1
kind: Pod
metadata: {name: hello}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: %s
      command: ["sh", "-c", "echo hello from the installed agent; exec sleep 3600"]
      resources: {requests: {cpu: 10m, memory: 8Mi}}
""" % IMAGE


def test_install_sh_agent_role_in_a_guest_joins_and_runs_a_pod(machine: Machine, vm_bed, tmp_path: Path,
                                                               image_archive: Path) -> None:
    host = vm_bed.lan.host_address
    port = free_port()
    cp = ControlPlane(tmp_path / "cp", port=port, extra_args=["--listen", f"127.0.0.1:{port},{host}:{port}"])
    cp.start(timeout=60)
    ctl = Ctl(cp.admin_config)
    try:
        # The guest's /usr is this machine's: its package database is this machine's too.
        nat, nat_addr, nat_gw = NAT
        machine.run(f"mkdir -p /var/lib/dpkg && mount --bind /host/var/lib/dpkg /var/lib/dpkg"
                    f" && ip link add {nat} type dummy && ip addr add {nat_addr} dev {nat}"
                    f" && ip link set {nat} up && ip route replace default via {nat_gw} dev {nat}",
                    check=True)

        join = cp.join_args(server=f"{host}:{port}")
        started = time.monotonic()
        r = machine.run(["bash", str(REPO / "deploy" / "install.sh"), "--role", "agent", *join,
                         "--root", ROOT, "--no-start"], timeout=600, cwd="/")
        print(f"\ninstall.sh --role agent in the guest: {time.monotonic() - started:.1f}s, exit {r.rc}")
        assert r.rc == 0, f"install.sh failed ({r.rc}):\n{r.stdout}\n{r.stderr}"
        assert "apt-get" not in r.stdout + r.stderr and "pip install" not in r.stdout + r.stderr, r.stdout
        defaults = machine.run(f"cat {ROOT}/etc/default/skiff-agent", check=True).stdout
        assert f"--node-ip {machine.address} " in defaults + " ", defaults

        unit = f"{ROOT}/etc/systemd/system/skiff-agent.service"
        argv = json.loads(machine.python(
            "-c", "import json, sys; from pathlib import Path; from deploy_units import exec_start; "
                  "print(json.dumps(exec_start(Path(sys.argv[1]))))", unit,
            env={"PYTHONPATH": str(REPO / "tests")}, timeout=300, check=True).stdout)
        assert argv[0] == str(REPO / ".venv" / "bin" / "skiff-agent")
        assert argv[1:3] == ["--state-dir", f"{ROOT}/var/lib/skiff/agent"], argv
        agent = machine.spawn(argv, log=AGENT_LOG, cwd="/")
        agents = {machine: agent}
        wait(lambda: nodes_ready(ctl, {machine.name}), timeout=JOIN_TIMEOUT, what=f"node {machine.name} Ready",
             logs_of=(machine,), agents=agents)
        print(f"install to node {machine.name} Ready: {time.monotonic() - started:.1f}s")
        (node,) = ctl.items("nodes")
        assert [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"] == [machine.address]

        ctl("image", "load", "--node", machine.name, str(image_archive), timeout=300)
        ctl("apply", "-f", "-", stdin=POD)
        applied = time.monotonic()

        def running() -> bool:
            table = ctl("get", "pods").stdout.splitlines()
            return any(line.split()[:1] == ["hello"] and "Running" in line.split() for line in table)
        wait(running, timeout=300, what="pod hello Running", logs_of=(machine,), agents=agents)
        print(f"pod applied to Running: {time.monotonic() - applied:.1f}s")
        pod = ctl.items("pods")[0]
        assert pod["spec"]["nodeName"] == machine.name
        assert "hello from the installed agent" in ctl("logs", "hello").stdout
    finally:
        machine.power_off()         # a clean slate: the install, the agent and its pods lived in RAM
        cp.stop()
