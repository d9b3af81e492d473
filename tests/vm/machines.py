"""Real machines for the tests: Debian-kernel guests under qemu on a LAN bridge of this machine.

    this machine                                     guest (qemu TCG, -cpu max, 1 vCPU)
    bridge svm<tag> 198.18.K.1/24 ── tap svm<tag>t1 ── eth0 198.18.K.11/24   "vm1"
                                  ── tap svm<tag>t2 ── eth0 198.18.K.12/24   "vm2" ...
    Unix socket <dir>/vm1.ctl  ── virtio-serial "skiff.ctl" ── tests/vm/guestd.py (commands)

Each guest boots Debian's 6.1 kernel (fetched by deploy/vm-kernel.sh into a cache, never
installed here) with a busybox initramfs whose /init is tests/vm/guest-init.sh: pure cgroup v2
(`cgroup_no_v1=all`), no systemd, this machine's root read-only over 9p (same Python, same
venv, same repo), a tmpfs for everything written. Tests drive a guest through `Machine.run`,
a command with a deadline sent over the virtio-serial port — a channel that does not use the
LAN, so it works while the guest is partitioned (`Machine.partition`: the tap's link goes
down) and tells a dead guest apart from a cut-off one. `Machine.power_off` kills qemu, as
pulling the plug would. `Machine.boot` starts it again on the same tap and address.

`skip_reason()` says why the VM tests cannot run here; `Bed` owns the bridge and the guests
and `Bed.close()` removes every qemu process, tap and the bridge, whatever happened.
Guest code runs 10-50x slower than on this machine, so deadlines here are generous but
always bounded.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("SKIFF_VM_CACHE", "/var/cache/skiff-vm"))
KERNEL_DIR = CACHE / "kernel"
QEMU = "qemu-system-x86_64"
LAN_RANGE = ipaddress.ip_network("198.18.0.0/16")
# Loaded in the initramfs, before the host root is reachable: the transport to it and the NIC.
STAGE1_MODULES = ("virtio_pci", "virtio_console", "9pnet_virtio", "9p", "virtio_net")
AGENT_LOG = "/var/log/skiff-agent.log"
BOOT_TIMEOUT = float(os.environ.get("SKIFF_VM_BOOT_TIMEOUT", "180"))


class GuestError(RuntimeError):
    """The guest could not do what was asked (not booted, channel lost, command timed out)."""


def skip_reason() -> str | None:
    """Why the VM tests cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "needs root: creates a bridge and tap devices and runs qemu with them"
    if shutil.which(QEMU) is None:
        return f"needs {QEMU} (run deploy/vm-kernel.sh, or apt-get install qemu-system-x86)"
    if not (KERNEL_DIR / "release").is_file():
        return f"no guest kernel in {KERNEL_DIR} (run deploy/vm-kernel.sh)"
    if not Path("/dev/net/tun").exists():
        return "needs /dev/net/tun for the guests' tap devices"
    for tool in ("ip", "cpio"):
        if shutil.which(tool) is None:
            return f"needs the {tool} program"
    if not Path("/bin/busybox").exists():
        return "needs busybox-static for the guests' initramfs"
    return None


def sh(*argv: str, check: bool = True) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


# ---- the kernel and the initramfs ----------------------------------------------------------

def kernel_release() -> str:
    return (KERNEL_DIR / "release").read_text().strip()


def _module_deps(release: str) -> dict[str, list[str]]:
    deps: dict[str, list[str]] = {}
    for line in (KERNEL_DIR / "lib/modules" / release / "modules.dep").read_text().splitlines():
        module, _, rest = line.partition(":")
        deps[module] = rest.split()
    return deps


def _load_order(release: str, names: tuple[str, ...]) -> list[str]:
    """Module paths (relative to lib/modules/<release>) for `names`, dependencies first."""
    deps = _module_deps(release)
    by_name = {Path(p).name.split(".ko")[0].replace("-", "_"): p for p in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        for dep in reversed(deps[path]):
            visit(dep)
        if path not in order:
            order.append(path)

    for name in names:
        if name not in by_name:
            raise RuntimeError(f"module {name} is not in the guest kernel {release}")
        visit(by_name[name])
    return order


def build_initramfs(out: Path) -> Path:
    """A newc cpio with busybox, the stage-1 modules (in load order) and guest-init.sh as /init."""
    release = kernel_release()
    with tempfile.TemporaryDirectory(prefix="skiff-initramfs-") as tmp:
        root = Path(tmp)
        for d in ("bin", "proc", "sys", "dev", "modules", "newroot"):
            (root / d).mkdir()
        shutil.copy2("/bin/busybox", root / "bin/busybox")
        names = []
        for rel in _load_order(release, STAGE1_MODULES):
            src = KERNEL_DIR / "lib/modules" / release / rel
            name = Path(rel).name
            if name.endswith(".xz"):
                (root / "modules" / name[:-3]).write_bytes(subprocess.run(
                    ["xz", "-dc", str(src)], capture_output=True, check=True).stdout)
                name = name[:-3]
            else:
                shutil.copy2(src, root / "modules" / name)
            names.append(name)
        (root / "modules/order").write_text("\n".join(names) + "\n")
        shutil.copy2(HERE / "guest-init.sh", root / "init")
        (root / "init").chmod(0o755)
        files = subprocess.run(["find", ".", "-mindepth", "1"], cwd=root, capture_output=True,
                               text=True, check=True).stdout
        with open(out, "wb") as fh:
            subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=files.encode(),
                           stdout=fh, check=True)
    return out


# ---- the LAN -------------------------------------------------------------------------------

def host_networks() -> list[ipaddress.IPv4Network]:
    nets = []
    for link in json.loads(sh("ip", "-j", "-4", "addr", "show") or "[]"):
        for addr in link.get("addr_info", []):
            nets.append(ipaddress.ip_network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
    return nets


@dataclass
class Lan:
    """A bridge on this machine with the first address of a free /24 of 198.18.0.0/16."""
    tag: str
    bridge: str = ""
    subnet: ipaddress.IPv4Network | None = None

    def create(self) -> None:
        self.bridge = f"svm{self.tag}"
        taken = host_networks()
        subnets = list(LAN_RANGE.subnets(new_prefix=24))
        start = int(self.tag, 16) % len(subnets)
        for i in range(len(subnets)):
            subnet = subnets[(start + i) % len(subnets)]
            if not any(subnet.overlaps(t) for t in taken):
                self.subnet = subnet
                break
        else:
            raise RuntimeError("no free /24 left in 198.18.0.0/16 for the VM LAN")
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.host_address}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")

    @property
    def host_address(self) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    def address(self, index: int) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 10 + index)

    def add_tap(self, name: str) -> None:
        sh("ip", "tuntap", "add", "dev", name, "mode", "tap")
        sh("ip", "link", "set", name, "master", self.bridge)
        sh("ip", "link", "set", name, "up")

    def destroy(self) -> None:
        if self.bridge:
            sh("ip", "link", "del", self.bridge, check=False)


# ---- a guest -------------------------------------------------------------------------------

@dataclass
class Result:
    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    timed_out: bool = False

    def check(self) -> "Result":
        if self.rc != 0 or self.timed_out:
            what = "timed out" if self.timed_out else f"exit {self.rc}"
            raise GuestError(f"{' '.join(self.argv)}: {what}\n--- stdout\n{self.stdout[-4000:]}"
                             f"\n--- stderr\n{self.stderr[-4000:]}")
        return self


class Channel:
    """The host end of a guest's virtio-serial command port: requests by id, answers by id."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.lock = threading.Lock()
        self.next_id = 0
        self.waiting: dict[int, tuple[threading.Event, list]] = {}
        self.closed = False
        self.answered = threading.Event()     # any answer at all, even to a request given up on
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                try:
                    message = json.loads(line)
                except ValueError:
                    continue           # noise before guestd opened the port
                self.answered.set()
                entry = self.waiting.pop(message.get("id"), None)
                if entry:
                    entry[1].append(message)
                    entry[0].set()
        self.closed = True
        for event, _ in list(self.waiting.values()):
            event.set()

    def request(self, message: dict, timeout: float) -> dict:
        with self.lock:
            self.next_id += 1
            ident = self.next_id
            event, box = threading.Event(), []
            self.waiting[ident] = (event, box)
            try:
                self.sock.sendall((json.dumps({**message, "id": ident}) + "\n").encode())
            except OSError as exc:
                self.waiting.pop(ident, None)
                raise GuestError(f"command channel lost: {exc}") from None
        if not event.wait(timeout):
            self.waiting.pop(ident, None)
            raise GuestError(f"no answer from the guest within {timeout:.0f}s to {message.get('op')}")
        if not box:
            raise GuestError("command channel closed (guest powered off?)")
        answer = box[0]
        if not answer.get("ok"):
            raise GuestError(f"guest: {answer.get('error')}")
        return answer

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


DEFAULT_BINDS = ("work", "opt", "root", "home")


def guest_binds() -> tuple[str, ...]:
    """Host directories a guest sees (read-only, at the same paths): the usual homes of a
    checkout and of Python, plus this checkout and this interpreter wherever they are (a CI
    clone may live under /tmp, which the guest keeps as its own tmpfs)."""
    extra = []
    for path in (REPO, Path(sys.base_prefix).resolve()):
        top = path.parts[1] if len(path.parts) > 1 else ""
        if top and top not in DEFAULT_BINDS and top != "usr":
            extra.append(str(path).strip("/"))
    return DEFAULT_BINDS + tuple(dict.fromkeys(extra))


@dataclass(eq=False)
class Machine:
    """One guest. `run` commands in it, `power_off`/`boot` it, `partition`/`heal` its link."""
    bed: "Bed"
    index: int
    name: str
    address: str
    tap: str
    memory_mb: int = 768
    qemu: subprocess.Popen | None = None
    channel: Channel | None = None
    boot_seconds: float | None = None
    extra_binds: tuple[str, ...] = ()
    console_path: Path = field(init=False)
    ctl_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.console_path = self.bed.dir / f"{self.name}.console"
        self.ctl_path = self.bed.dir / f"{self.name}.ctl"

    @property
    def mac(self) -> str:
        return "52:54:00:%02x:%02x:%02x" % (int(self.bed.tag[:2], 16), int(self.bed.tag[2:4], 16), self.index)

    def qemu_argv(self) -> list[str]:
        lan = self.bed.lan
        binds = ",".join(b.strip("/") for b in (*guest_binds(), *self.extra_binds))
        cmdline = " ".join([
            "console=ttyS0", "panic=-1", "quiet", "loglevel=4", "cgroup_no_v1=all",
            "systemd.unified_cgroup_hierarchy=1", "net.ifnames=0", "tsc=reliable",
            "no_timer_check",      # a starved TCG guest fails the IO-APIC timer check and panics
            f"skiff.name={self.name}", f"skiff.ip={self.address}/24", f"skiff.gw={lan.host_address}",
            f"skiff.kdir={KERNEL_DIR}", f"skiff.python={sys.executable}",
            f"skiff.guestd={HERE / 'guestd.py'}", f"skiff.binds={binds}",
        ])
        return [
            QEMU, "-name", self.name, "-machine", "q35", "-accel", "tcg,tb-size=256",
            "-cpu", "max", "-smp", "1", "-m", str(self.memory_mb),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", str(KERNEL_DIR / "vmlinuz"), "-initrd", str(self.bed.initramfs),
            "-append", cmdline,
            "-serial", f"file:{self.console_path}",
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-netdev", f"tap,id=n0,ifname={self.tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={self.mac}",
            "-chardev", f"socket,id=ctl,path={self.ctl_path},server=on,wait=off",
            "-device", "virtio-serial-pci",
            "-device", "virtserialport,chardev=ctl,name=skiff.ctl",
        ]

    # -- power ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start qemu (returns at once; `wait_ready` waits for the command server)."""
        if self.qemu is not None and self.qemu.poll() is None:
            raise GuestError(f"{self.name} is already running")
        self.ctl_path.unlink(missing_ok=True)
        self.console_path.unlink(missing_ok=True)
        self._started = time.monotonic()
        self.qemu = subprocess.Popen(self.qemu_argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(self.bed.dir / f"{self.name}.qemu.log", "ab"))

    def wait_ready(self, timeout: float = BOOT_TIMEOUT) -> float:
        """Wait for guestd to answer; the seconds from qemu's start to the answer."""
        deadline = self._started + timeout
        while self.channel is None:
            self._check_alive()
            if self.ctl_path.exists():
                try:
                    self.channel = Channel(self.ctl_path)
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise GuestError(f"{self.name}: qemu made no control socket in {timeout:.0f}s{self._tail()}")
            time.sleep(0.05)
        while True:
            self._check_alive()
            try:
                self.channel.request({"op": "ping"}, timeout=5)
                break
            except GuestError:
                if self.channel.answered.is_set():    # a late answer: a starved guest, but up
                    break
                if self.channel.closed or time.monotonic() > deadline:
                    raise GuestError(f"{self.name}: not ready within {timeout:.0f}s{self._tail()}") from None
        self.boot_seconds = time.monotonic() - self._started
        return self.boot_seconds

    def boot(self, timeout: float = BOOT_TIMEOUT) -> float:
        self.start()
        return self.wait_ready(timeout)

    def _check_alive(self) -> None:
        if self.qemu is None or self.qemu.poll() is not None:
            code = None if self.qemu is None else self.qemu.returncode
            raise GuestError(f"{self.name}: qemu is not running (exit {code}){self._tail()}")

    def _tail(self, lines: int = 30) -> str:
        parts = []
        for path in (self.console_path, self.bed.dir / f"{self.name}.qemu.log"):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"\n--- {path.name}\n" + "\n".join(text))
        return "".join(parts)

    def console(self) -> str:
        return self.console_path.read_text(errors="replace") if self.console_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.qemu is not None and self.qemu.poll() is None

    def power_off(self) -> None:
        """Pull the plug: SIGKILL qemu. Nothing in the guest gets to react."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.qemu is not None and self.qemu.poll() is None:
            self.qemu.kill()
            self.qemu.wait(timeout=30)

    # -- the network ------------------------------------------------------------------------

    def partition(self) -> None:
        """Cut the guest off the LAN (its tap's link goes down); commands still work."""
        sh("ip", "link", "set", self.tap, "down")

    def heal(self) -> None:
        sh("ip", "link", "set", self.tap, "up")

    # -- commands ---------------------------------------------------------------------------

    def run(self, argv: list[str] | str, *, timeout: float = 60, env: dict | None = None,
            cwd: str | None = None, input: str = "", check: bool = False) -> Result:
        """Run a command in the guest and wait (at most `timeout` s) for it to finish.
        A string is a shell command line (sh -c)."""
        if isinstance(argv, str):
            argv = ["/bin/sh", "-c", argv]
        if self.channel is None:
            raise GuestError(f"{self.name} is not booted")
        answer = self.channel.request({"op": "run", "argv": argv, "timeout": timeout, "env": env or {},
                                       "cwd": cwd, "input": input}, timeout=timeout + 30)
        result = Result(argv, answer["rc"], answer["stdout"], answer["stderr"], answer["timed_out"])
        return result.check() if check else result

    def spawn(self, argv: list[str], *, log: str, env: dict | None = None, cwd: str | None = None) -> int:
        """Start a long-running command in the guest, detached, output appended to `log`; its PID."""
        if self.channel is None:
            raise GuestError(f"{self.name} is not booted")
        return self.channel.request({"op": "spawn", "argv": argv, "log": log, "env": env or {},
                                     "cwd": cwd}, timeout=60)["pid"]

    def start_agent(self, join: list[str], *, cluster_cidr: str, extra_args: tuple[str, ...] = ()) -> int:
        """Start `skiff-agent` in the guest with `join` (`--server ... --token ... --ca-cert-hash ...`,
        as `skiff-controlplane token create` prints it), node name = the guest's name, InternalIP
        and service on its LAN address; its PID. Log: /var/log/skiff-agent.log (`agent_log()`)."""
        argv = [sys.executable, "-m", "agent.main", *join, "--node-name", self.name,
                "--node-ip", self.address, "--listen", f"{self.address}:10250",
                "--cluster-cidr", cluster_cidr, *extra_args]
        return self.spawn(argv, log=AGENT_LOG, cwd=str(REPO), env={"PYTHONPATH": str(REPO)})

    def agent_log(self, lines: int = 60) -> str:
        return self.run(f"tail -n {lines} {AGENT_LOG}", timeout=30).stdout

    def python(self, *args: str, **kwargs) -> Result:
        """Run this repo's venv Python in the guest (cwd: the repo)."""
        kwargs.setdefault("cwd", str(REPO))
        return self.run([sys.executable, *args], **kwargs)


class Bed:
    """A LAN bridge and the guests on it. Use as a context manager, or call close()."""

    def __init__(self, *, tag: str | None = None) -> None:
        self.tag = tag or secrets.token_hex(3)
        self.dir = Path(tempfile.mkdtemp(prefix=f"skiff-vm-{self.tag}-"))
        self.dir.chmod(0o700)
        self.lan = Lan(self.tag)
        self.machines: list[Machine] = []
        self.initramfs = self.dir / "initramfs.cpio"
        try:
            build_initramfs(self.initramfs)
            self.lan.create()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "Bed":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add(self, *, memory_mb: int = 768, extra_binds: tuple[str, ...] = ()) -> Machine:
        index = len(self.machines) + 1
        tap = f"svm{self.tag}t{index}"
        self.lan.add_tap(tap)
        machine = Machine(self, index, f"vm{index}", self.lan.address(index), tap,
                          memory_mb=memory_mb, extra_binds=extra_binds)
        self.machines.append(machine)
        return machine

    def boot(self, count: int, *, timeout: float = BOOT_TIMEOUT, **kwargs) -> list[Machine]:
        """Add and boot `count` guests in parallel; they are ready when this returns."""
        machines = [self.add(**kwargs) for _ in range(count)]
        for m in machines:
            m.start()
        for m in machines:
            m.wait_ready(timeout)
        return machines

    def close(self) -> None:
        for m in self.machines:
            try:
                m.power_off()
            except Exception:  # noqa: BLE001 - tear the rest down regardless
                if m.qemu is not None:
                    m.qemu.kill()
        for m in self.machines:
            sh("ip", "link", "del", m.tap, check=False)
        self.lan.destroy()
        shutil.rmtree(self.dir, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """Whatever of this bed still exists: qemu processes, taps, the bridge."""
        left = [f"qemu pid {m.qemu.pid}" for m in self.machines if m.qemu is not None and m.qemu.poll() is None]
        links = {link["ifname"] for link in json.loads(sh("ip", "-j", "link", "show") or "[]")}
        left += sorted(name for name in links if name.startswith(f"svm{self.tag}"))
        return left
