"""deploy/: the systemd units pass `systemd-analyze verify`, install.sh's server role runs on
this machine (units and configuration installed under a --root, the control plane started
with its unit's own ExecStart), its agent role picks the address that routes to the server
rather than the NAT one, and the Vagrantfile passes `vagrant validate`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest

from deploy_units import exec_start, install, unit_settings
from procs import REPO, free_port, port_open, wait_for

pytestmark = pytest.mark.slow


def verify(unit) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def systemd_analyze():
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not found (Debian's systemd package)")


def test_server_role_installs_verified_units_and_runs_here(tmp_path, systemd_analyze):
    root, port = tmp_path / "root", free_port()
    state = root / "var/lib/skiff/controlplane"
    r = install("--role", "server", "--root", str(root), "--port", str(port), "--advertise-address", "127.0.0.1")
    assert r.returncode == 0, r.stderr
    unit = root / "etc/systemd/system/skiff-controlplane.service"
    # Not started here (no systemd): it says how to get the join command once it runs.
    assert f"skiff-controlplane token --state-dir {state} create" in r.stdout
    result = verify(unit)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    settings = unit_settings(unit)
    assert settings["Restart"] == ["always"] and settings["StandardOutput"] == ["journal"]
    assert settings["StateDirectory"] == ["skiff/controlplane"]

    argv = exec_start(unit)
    assert argv == [str(REPO / ".venv/bin/skiff-controlplane"), "--state-dir", str(state),
                    "--listen", f"127.0.0.1:{port}", "--advertise-address", f"127.0.0.1:{port}"]
    log = open(tmp_path / "controlplane.log", "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO), "SKIFF_CONFIG": str(state / "admin.conf")}

        def namespaces() -> bool:
            assert proc.poll() is None, (tmp_path / "controlplane.log").read_text()[-2000:]
            r = subprocess.run([sys.executable, "-m", "cli.main", "get", "ns"], capture_output=True, text=True,
                               cwd=REPO, env=env, timeout=30)
            return r.returncode == 0 and "default" in r.stdout
        wait_for(namespaces, timeout=60, interval=0.5, what="the installed control plane to serve ctl")
        # The join command, made as the install said.
        r = subprocess.run([str(REPO / ".venv/bin/skiff-controlplane"), "token", "--state-dir", str(state), "create"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"skiff-agent --server 127.0.0.1:{port} --token ") and "--ca-cert-hash sha256:" in r.stdout
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    assert not port_open(port)


def test_agent_role_installs_a_verified_unit_with_kill_mode_process(tmp_path, systemd_analyze):
    root = tmp_path / "root"
    r = install("--role", "agent", "--server", "127.0.0.1:6443", "--node-name", "n1", "--root", str(root))
    assert r.returncode == 0, r.stderr
    unit = root / "etc/systemd/system/skiff-agent.service"
    result = verify(unit)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    settings = unit_settings(unit)
    assert settings["KillMode"] == ["process"] and settings["Delegate"] == ["yes"]
    assert settings["Restart"] == ["always"]
    assert exec_start(unit)[3:] == ["--server", "127.0.0.1:6443", "--node-ip", "127.0.0.1", "--node-name", "n1"]
    r = install("--role", "agent", "--server", "127.0.0.1:6443", "--token", "abcdef.0123456789abcdef",
                "--ca-cert-hash", "sha256:00", "--root", str(root))
    assert r.returncode == 0, r.stderr
    defaults = root / "etc/default/skiff-agent"
    assert exec_start(unit)[-4:] == ["--token", "abcdef.0123456789abcdef", "--ca-cert-hash", "sha256:00"]
    assert defaults.stat().st_mode & 0o077 == 0   # the token is not for everyone to read


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a network namespace")
def test_agent_role_picks_the_interface_that_routes_to_the_server_not_the_nat_one(tmp_path):
    """A Vagrant box: eth0 is NAT (the default route), eth1 the private network the server
    is on. The agent must advertise eth1's address; --node-ip overrides."""
    ns = f"skiff-inst-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        def ip(*args: str) -> None:
            subprocess.run(["ip", "-n", ns, *args], check=True)
        ip("link", "add", "nat0", "type", "veth", "peer", "name", "nat0p")
        ip("link", "add", "priv0", "type", "veth", "peer", "name", "priv0p")
        ip("addr", "add", "198.18.250.15/24", "dev", "nat0")
        ip("addr", "add", "198.19.250.11/24", "dev", "priv0")
        for link in ("lo", "nat0", "nat0p", "priv0", "priv0p"):
            ip("link", "set", link, "up")
        ip("route", "add", "default", "via", "198.18.250.2")
        root = tmp_path / "root"
        r = install("--role", "agent", "--server", "198.19.250.10:6443", "--root", str(root), netns=ns)
        assert r.returncode == 0, r.stderr
        defaults = (root / "etc/default/skiff-agent").read_text()
        assert defaults == 'SKIFF_AGENT_ARGS="--server 198.19.250.10:6443 --node-ip 198.19.250.11"\n'
        r = install("--role", "agent", "--server", "198.19.250.10:6443", "--node-ip", "198.18.250.15",
                    "--root", str(root), netns=ns)
        assert r.returncode == 0, r.stderr
        assert "--node-ip 198.18.250.15" in (root / "etc/default/skiff-agent").read_text()
    finally:
        subprocess.run(["ip", "netns", "delete", ns])


def test_install_rejects_bad_arguments_by_name():
    for args, message in [(["--role", "bogus"], "error: --role: expected server or agent, got 'bogus'"),
                          (["--role", "agent"], "error: --role agent needs --server HOST:PORT"),
                          (["--role", "server", "--port", "99999"], "error: --port: expected 1-65535, got '99999'"),
                          (["--frobnicate"], "error: unknown argument '--frobnicate'")]:
        r = install(*args)
        assert r.returncode == 1 and r.stderr.startswith(message), (args, r.stderr)


def test_vagrantfile_validates(tmp_path):
    """`vagrant validate` with the libvirt provider (Debian's vagrant and vagrant-libvirt; this
    machine has no VirtualBox) checks the Vagrantfile and its provider settings, for 3 workers."""
    vagrant = shutil.which("vagrant")
    if not vagrant:
        pytest.skip("vagrant not found (Debian's vagrant package; deploy/install.sh --test installs it)")
    if subprocess.run(["dpkg-query", "-W", "vagrant-libvirt"], capture_output=True).returncode != 0:
        pytest.skip("vagrant-libvirt not installed (deploy/install.sh --test installs it): no provider to validate for")
    env = {**os.environ, "VAGRANT_HOME": str(tmp_path / "vagrant.d"), "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot"),
           "VAGRANT_DEFAULT_PROVIDER": "libvirt", "VAGRANT_CHECKPOINT_DISABLE": "1", "SKIFF_WORKERS": "3"}
    vagrant_dir = REPO / "deploy" / "vagrant"
    before = sorted(p.name for p in vagrant_dir.iterdir())
    r = subprocess.run([vagrant, "validate"], cwd=vagrant_dir, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Vagrantfile validated successfully" in r.stdout
    r = subprocess.run([vagrant, "validate"], cwd=vagrant_dir, capture_output=True, text=True, timeout=300,
                       env={**env, "SKIFF_WORKERS": "many"})
    assert r.returncode != 0 and "invalid value for Integer" in r.stdout + r.stderr
    assert sorted(p.name for p in vagrant_dir.iterdir()) == before   # nothing left in the source tree
