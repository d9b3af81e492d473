"""The container lifecycle as a state machine, persisted in one JSON file per container.

    created ──▶ running ──▶ exited ──▶ removed
       │                      ▲
       └──────────────────────┘   (start failed before exec: exited, reason StartError)
       └──────────────────────────────────▶ removed

`TRANSITIONS` is the whole table; `advance()` refuses anything else. The
container's supervisor writes `created`, `running` and `exited` (supervisor.py);
`remove_container` (runtime.py) writes `removed` just before it deletes the
directory, so an agent that crashes half-way knows to finish the job.

A state file records facts, not beliefs: the PID *and* its start time (field 22 of
/proc/<pid>/stat). `observe()` derives the current state from them, so an agent
restarted after a crash re-adopts running containers (their supervisor kept going
without it) and reads exit codes recorded while it was down.

Every write is atomic (temp file, rename), and the ones that record facts nobody
could find out again - `running` with its PID and start time, `exited` with its
exit code - are also durable (fsync before the rename). The plan and the
`created` record are not fsync'd: they hold nothing the agent does not know, and
fsync can take milliseconds on a busy disk, on the path of every container start.
(A machine crash ends every container anyway; like runc, which keeps its state in
/run, a production agent may put `root` on a tmpfs, where fsync costs nothing.)
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal as signals
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from agent.runtime import linux


class State(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    REMOVED = "removed"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.CREATED: frozenset({State.RUNNING, State.EXITED, State.REMOVED}),
    State.RUNNING: frozenset({State.EXITED}),
    State.EXITED: frozenset({State.REMOVED}),
    State.REMOVED: frozenset(),
}


class InvalidTransition(RuntimeError):
    pass


@dataclass(frozen=True)
class StateRecord:
    id: str
    state: State
    created_at: float                      # Unix time, seconds
    pid: int | None = None                 # host PID of the container's process 1
    pid_start: int | None = None           # its start time in clock ticks since boot
    supervisor_pid: int | None = None
    supervisor_start: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    oom_killed: bool = False
    reason: str = ""
    message: str = ""

    def to_json(self) -> bytes:
        data = dataclasses.asdict(self)
        data["state"] = self.state.value
        return json.dumps(data, indent=1).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> "StateRecord":
        data = json.loads(raw)
        data["state"] = State(data["state"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def advance(record: StateRecord, to: State, **changes: Any) -> StateRecord:
    """The record in state `to`, if the transition table allows it."""
    if to not in TRANSITIONS[record.state]:
        raise InvalidTransition(f"container {record.id}: cannot go from {record.state.value} to {to.value}")
    return dataclasses.replace(record, state=to, **changes)


def exit_outcome(*, code: int | None, signal: int | None, oom_kills: int) -> tuple[int, str]:
    """(exit code, reason) Kubernetes-style: 128+n for signal n; OOMKilled when the
    process died of SIGKILL and the cgroup's OOM-kill count went up while it ran."""
    if signal is not None:
        exit_code = 128 + signal
        if signal == signals.SIGKILL and oom_kills > 0:
            return exit_code, "OOMKilled"
        return exit_code, "Error"
    assert code is not None
    return code, "Completed" if code == 0 else "Error"


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` so a reader sees the old or the new content, never half
    (and, when durable, the new content survives a machine crash once this returns)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:     # the rename itself is durable only once the directory is (a tmpfs: free)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def save(path: Path, record: StateRecord, *, durable: bool = True) -> None:
    write_atomic(path, record.to_json(), durable=durable)


def load(path: Path) -> StateRecord | None:
    try:
        return StateRecord.from_json(path.read_bytes())
    except FileNotFoundError:
        return None


def observe(path: Path) -> StateRecord | None:
    """The state file's record, corrected by what the kernel says right now.

    `running` stays running while the recorded process (or its supervisor, which is
    about to write the exit status) is alive. When both are gone the file is read
    once more - the supervisor may have written `exited` just before it exited -
    and if it still says running, the supervisor was killed too: the container is
    exited with an unknown exit code.
    """
    record = load(path)
    if record is None or record.state is not State.RUNNING or _watched(record):
        return record
    record = load(path)
    if record is None or record.state is not State.RUNNING:
        return record
    return advance(record, State.EXITED, reason="Unknown", message=(
        "the container exited while no supervisor was watching it; its exit code is lost"))


def _watched(record: StateRecord) -> bool:
    return (linux.is_alive(record.pid, record.pid_start)
            or linux.is_alive(record.supervisor_pid, record.supervisor_start))
