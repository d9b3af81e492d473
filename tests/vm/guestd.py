"""The command server inside a test guest (started by tests/vm/guest-init.sh).

It reads JSON requests, one per line, from the virtio-serial port named "skiff.ctl" and
answers each with one JSON line carrying the same id. The port is a Unix socket on the
host that only the test (root) opens, so the channel needs no address on the guest's LAN:
it keeps working while the test has the guest's network cut.

    {"id": 1, "op": "ping"}
        -> {"id": 1, "ok": true, "uptime": 4.2}
    {"id": 2, "op": "run", "argv": [...], "timeout": 30, "env": {...}, "cwd": "/", "input": ""}
        -> {"id": 2, "ok": true, "rc": 0, "stdout": "...", "stderr": "...", "timed_out": false}
    {"id": 3, "op": "spawn", "argv": [...], "log": "/var/log/agent.log", "env": {...}}
        -> {"id": 3, "ok": true, "pid": 123}       (runs on, detached, output to the log)

`run` starts the command in its own session and on timeout kills that whole session.
Requests run concurrently (a thread each). Only the standard library: this runs on
whatever Python the host has, read over 9p.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PORT_NAME = "skiff.ctl"
MAX_OUTPUT = 8 << 20


def find_port() -> str:
    for entry in Path("/sys/class/virtio-ports").iterdir():
        if (entry / "name").read_text().strip() == PORT_NAME:
            return f"/dev/{entry.name}"
    raise SystemExit(f"guestd: no virtio-serial port named {PORT_NAME}")


class Server:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.write_lock = threading.Lock()

    def reply(self, message: dict) -> None:
        data = (json.dumps(message) + "\n").encode()
        with self.write_lock:
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]

    def serve(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self.fd, 65536)
            if not chunk:            # the host side is not connected: wait for it
                time.sleep(0.1)
                continue
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    threading.Thread(target=self.handle, args=(line,), daemon=True).start()

    def handle(self, line: bytes) -> None:
        request: dict = {}
        try:
            request = json.loads(line)
            op = request.get("op")
            if op == "ping":
                result = {"uptime": float(Path("/proc/uptime").read_text().split()[0])}
            elif op == "run":
                result = run(request)
            elif op == "spawn":
                result = spawn(request)
            else:
                raise ValueError(f"unknown op {op!r}")
            self.reply({"id": request.get("id"), "ok": True, **result})
        except Exception as exc:  # noqa: BLE001 - the error goes back to the test
            self.reply({"id": request.get("id"), "ok": False, "error": f"{type(exc).__name__}: {exc}"})


def environment(request: dict) -> dict:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": "/root", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(request.get("env") or {})
    return env


def run(request: dict) -> dict:
    proc = subprocess.Popen(request["argv"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=request.get("cwd") or "/",
                            env=environment(request), start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate((request.get("input") or "").encode(), timeout=request.get("timeout"))
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
    return {"rc": proc.returncode, "timed_out": timed_out,
            "stdout": out[-MAX_OUTPUT:].decode(errors="replace"),
            "stderr": err[-MAX_OUTPUT:].decode(errors="replace")}


def spawn(request: dict) -> dict:
    log = request.get("log") or "/dev/null"
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(request["argv"], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                cwd=request.get("cwd") or "/", env=environment(request),
                                start_new_session=True)
    # Nobody waits for it here; PID 1 (the init shell) reaps it once this server lets go.
    threading.Thread(target=proc.wait, daemon=True).start()
    return {"pid": proc.pid}


def main() -> None:
    fd = os.open(find_port(), os.O_RDWR)
    print(f"guestd: serving on {PORT_NAME}", file=sys.stderr, flush=True)
    Server(fd).serve()


if __name__ == "__main__":
    main()
