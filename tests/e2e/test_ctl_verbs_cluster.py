"""kubectl habits against a real local cluster (`ctl cluster up`), and the README's tour.

- the README's quick start and tour commands print no traceback;
- exec: flags anywhere before `--` (`-c NAME`, `-n NS`), `-i` with a file and a pipe on stdin
  (a PermissionError traceback from loop.add_reader before), `-it` with stdin not a terminal
  (kubectl's warning, then the command runs), a real pty inside `-t` (`tty` prints /dev/pts/N);
- `logs POD CONTAINER`; `cp` both ways through exec + tar; `run` + `wait --for=condition=Ready`;
  `events --for`; hostPath: type "" makes the missing host directory, `Directory` on a missing
  one fails naming the node's path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from procs import REPO, Ctl, free_port, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_multinode_network import image_archive  # noqa: E402,F401 - a fixture

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: node network namespaces, containers")]

IMAGE = "skiff.local/busybox:1.35"

TWO_CONTAINERS = f"""
apiVersion: v1
kind: Pod
metadata: {{name: duo, namespace: verbs}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: main, image: {IMAGE}, command: ["sh", "-c", "echo main-log; exec sleep 86400"]}}
  - {{name: side, image: {IMAGE}, command: ["sh", "-c", "echo side-log; exec sleep 86400"]}}
"""

HOSTPATH = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: h, hostPath: {path: "%(path)s"%(type)s}}]
  containers:
  - name: c
    image: %(image)s
    command: ["sh", "-c", "echo hi > /h/file && exec sleep 86400"]
    volumeMounts: [{name: h, mountPath: /h}]
"""


def tour_commands() -> list[str]:
    """The `ctl` lines of README's tour block, without the ones that never end or need a terminal."""
    text = (REPO / "README.md").read_text()
    block = text.split("## A short tour", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    out = []
    for line in block.splitlines():
        command = re.sub(r"\s+#\s.*$", "", line).strip()
        if not command.startswith("ctl ") or "port-forward" in command or "-it " in command:
            continue
        out.append(command)
    return out


def no_traceback(r: subprocess.CompletedProcess, what: str) -> None:
    assert "Traceback" not in r.stderr and "Exception in callback" not in r.stderr, f"{what}: {r.stderr}"


def running(ctl: Ctl, name: str, namespace: str = "default") -> bool:
    r = ctl("get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.phase}", check=False)
    return r.stdout == "Running"


def test_tour_and_exec_cp_and_friends(tmp_path: Path, image_archive: Path) -> None:
    cluster_dir = (tmp_path / "cluster").resolve()
    ctl = Ctl(tmp_path / "config")
    try:
        r = ctl("cluster", "up", "--dir", str(cluster_dir), "--port", str(free_port()), "--nodes", "1")
        no_traceback(r, "cluster up")
        no_traceback(ctl("image", "load", str(image_archive)), "image load")
        no_traceback(ctl("apply", "-f", str(REPO / "deploy" / "examples")), "apply")
        wait_for(lambda: running(ctl, "client") and len([p for p in ctl.pods("app=web")
                                                         if p["status"].get("phase") == "Running"]) == 2,
                 timeout=180, what="the example running")
        web_pod = ctl.pods("app=web")[0]["metadata"]["name"]

        # The README tour, as written (<pod> is one of web's pods).
        for command in tour_commands():
            argv = command.replace("<pod>", web_pod).split(" && ")
            for one in argv:
                words = [w.strip("'") for w in re.findall(r"'[^']*'|\S+", one)][1:]
                if "$(" in one or words[:1] == ["delete"]:
                    continue
                r = ctl(*words, check=False, timeout=180)
                no_traceback(r, one)
                # ctl itself succeeded; an exec'd command's own exit status (busybox nslookup exits 1
                # when one search domain answers NXDOMAIN) and metrics not sampled yet are not ctl's.
                if words[0] not in ("top", "exec"):
                    assert r.returncode == 0, f"{one}: {r.stderr}"

        # exec: flags before `--`, anywhere
        ctl("create", "namespace", "verbs")
        ctl("apply", "-f", "-", stdin=TWO_CONTAINERS)
        wait_for(lambda: running(ctl, "duo", "verbs"), timeout=120, what="duo running")
        r = ctl("exec", "duo", "-c", "side", "-n", "verbs", "--", "sh", "-c", "echo $HOSTNAME-side")
        assert r.stdout == "duo-side\n"
        assert ctl("exec", "-n", "verbs", "duo", "-c", "main", "--", "echo", "-n", "x").stdout == "x"
        # logs POD CONTAINER, and -c after the pod
        assert ctl("logs", "duo", "side", "-n", "verbs").stdout == "side-log\n"
        assert ctl("logs", "duo", "-n", "verbs", "-c", "main").stdout == "main-log\n"

        # exec -i with a regular file, and with a pipe, on stdin
        script = tmp_path / "script.sh"
        script.write_text("echo from-file; cat /etc/hostname\n")
        env = ctl.env
        with script.open() as f:
            r = subprocess.run([sys.executable, "-m", "cli.main", "exec", "-i", "client", "--", "sh"], stdin=f,
                               capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
        no_traceback(r, "exec -i < file")
        assert (r.returncode, r.stdout) == (0, "from-file\nclient\n"), r.stderr
        r = subprocess.run(f"printf 'a\\nb\\n' | {sys.executable} -m cli.main exec -i client -- wc -l",
                           shell=True, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
        no_traceback(r, "pipe | exec -i")
        assert r.stdout.strip() == "2"
        # -it with stdin not a terminal: kubectl's warning, then it runs without one
        with script.open() as f:
            r = subprocess.run([sys.executable, "-m", "cli.main", "exec", "-it", "client", "--", "sh"], stdin=f,
                               capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
        no_traceback(r, "exec -it < file")
        assert r.stdout == "from-file\nclient\n"
        assert "Unable to use a TTY - input is not a terminal" in r.stderr
        # a real pty inside -t
        import pty
        master, slave = pty.openpty()
        try:
            r = subprocess.run([sys.executable, "-m", "cli.main", "exec", "-it", "client", "--", "tty"],
                               stdin=slave, capture_output=True, cwd=REPO, env=env, timeout=120)
        finally:
            os.close(slave)
            os.close(master)
        out = r.stdout.decode(errors="replace")
        assert re.search(r"/dev/pts/\d+", out), (out, r.stderr)
        assert r.returncode == 0

        # cp both ways, a file and a directory
        (tmp_path / "site").mkdir()
        (tmp_path / "site" / "index.html").write_text("<h1>copied</h1>\n")
        ctl("cp", str(tmp_path / "site"), "client:/tmp/www")
        assert ctl("exec", "client", "--", "cat", "/tmp/www/index.html").stdout == "<h1>copied</h1>\n"
        ctl("exec", "client", "--", "sh", "-c", "echo back > /tmp/out.txt")
        ctl("cp", "client:/tmp/out.txt", str(tmp_path / "out.txt"))
        assert (tmp_path / "out.txt").read_text() == "back\n"
        ctl("cp", "client:/tmp/www", str(tmp_path / "www-back"))
        assert (tmp_path / "www-back" / "index.html").read_text() == "<h1>copied</h1>\n"
        r = ctl("cp", "client:/no/such", str(tmp_path / "x"), check=False)
        assert r.returncode == 1 and "Traceback" not in r.stderr and "No such file" in r.stderr, r.stderr

        # run + wait + events --for
        ctl("run", "sleeper", f"--image={IMAGE}", "--restart=Never", "--", "sleep", "3600")
        assert ctl("wait", "--for=condition=Ready", "pod/sleeper", "--timeout=120s").stdout == \
            "pod/sleeper condition met\n"
        events = ctl("events", "--for", "pod/sleeper").stdout
        assert "Scheduled" in events and "pod/sleeper" in events

        # hostPath: "" makes the missing directory (as containerd); Directory names the host path
        ctl("label", "ns", "default", "pod-security.kubernetes.io/enforce=privileged", "--overwrite")
        made = tmp_path / "made-by-agent"
        ctl("apply", "-f", "-", stdin=HOSTPATH % {"name": "hp-made", "path": made, "type": "", "image": IMAGE})
        wait_for(lambda: running(ctl, "hp-made"), timeout=120, what="hp-made running")
        assert (made / "file").read_text() == "hi\n"
        missing = tmp_path / "not-there"
        ctl("apply", "-f", "-", stdin=HOSTPATH % {"name": "hp-missing", "path": missing, "type": ", type: Directory",
                                                  "image": IMAGE})
        wait_for(lambda: f"hostPath type check failed: {missing} is not a directory"
                 in ctl("events", "--for", "pod/hp-missing").stdout, timeout=120, what="FailedMount naming the path")
        assert not missing.exists()
        ctl("delete", "pod", "hp-made", "hp-missing", "sleeper", "--grace-period=0", check=False)
    finally:
        r = ctl("cluster", "down", "--dir", str(cluster_dir), check=False)
        no_traceback(r, "cluster down")


def test_cluster_registry_serves_latest_images(tmp_path: Path) -> None:
    """`ctl cluster up --registry`: an image pushed there as `:latest` (imagePullPolicy Always, so
    `ctl image load` alone would not do) is pulled by the node and runs; the mirrors file every
    agent got names the registry as plain http."""
    if not Path("/usr/bin/docker-registry").exists() or not shutil.which("skopeo"):
        pytest.skip("docker-registry and skopeo are needed (deploy/install.sh --test installs them)")
    layout = tmp_path / "layout"
    subprocess.run([sys.executable, str(REPO / "deploy" / "build-test-image.py"), "--out", str(layout),
                    "--tag", "app:latest"], check=True, capture_output=True)
    cluster_dir = (tmp_path / "cluster").resolve()
    ctl = Ctl(tmp_path / "config")
    try:
        r = ctl("cluster", "up", "--dir", str(cluster_dir), "--port", str(free_port()), "--nodes", "1", "--registry",
                "--registry-mirror", "docker.io=https://mirror.invalid")
        no_traceback(r, "cluster up --registry")
        address = re.search(r"registry at (\S+) \(plain http\)", r.stdout).group(1)
        registries = (cluster_dir / "registries.yaml").read_text()
        assert address in registries and "insecure: true" in registries and "mirror.invalid" in registries
        pushed = subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
                                 f"oci:{layout}:app:latest", f"docker://{address}/app:latest"],
                                capture_output=True, text=True, timeout=120)
        assert pushed.returncode == 0, pushed.stderr
        ctl("run", "fromreg", f"--image={address}/app", "--restart=Never", "--", "sleep", "3600")
        assert "Always" in ctl("get", "pod", "fromreg", "-o", "jsonpath={.spec.containers[0].imagePullPolicy}").stdout
        assert ctl("wait", "--for=condition=Ready", "pod/fromreg", "--timeout=180s").stdout == \
            "pod/fromreg condition met\n"
    finally:
        r = ctl("cluster", "down", "--dir", str(cluster_dir), check=False)
        no_traceback(r, "cluster down")
    assert not cluster_dir.exists()
