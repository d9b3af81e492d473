"""The runtime's pure parts, table-driven: state transitions, exit reasons, CRI log
records and rotation, capability sets, path resolution inside a rootfs, spec checks.
No root needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.runtime import capabilities, plan, sandbox, state
from agent.runtime.crilog import CriLogWriter, timestamp
from agent.runtime.rootfs import resolve_in_root
from agent.runtime.specs import ContainerSpec, Mount, validate_container
from agent.runtime.state import InvalidTransition, State, StateRecord

ALLOWED = {("created", "running"), ("created", "exited"), ("created", "removed"),
           ("running", "exited"), ("exited", "removed")}


@pytest.mark.parametrize("source", list(State))
@pytest.mark.parametrize("target", list(State))
def test_transition_table(source: State, target: State) -> None:
    record = StateRecord(id="c", state=source, created_at=0.0)
    if (source.value, target.value) in ALLOWED:
        assert state.advance(record, target).state is target
    else:
        with pytest.raises(InvalidTransition, match=f"cannot go from {source.value} to {target.value}"):
            state.advance(record, target)


@pytest.mark.parametrize("code, signal, oom_kills, expected", [
    (0, None, 0, (0, "Completed")),
    (3, None, 0, (3, "Error")),
    (0, None, 1, (0, "OOMKilled")),          # a child OOM-killed, the process went on: containerd's word
    (137, None, 1, (137, "OOMKilled")),      # a shell reporting its child's SIGKILL
    (1, None, 1, (1, "OOMKilled")),
    (None, 9, 0, (137, "Error")),
    (None, 9, 1, (137, "OOMKilled")),
    (None, 15, 1, (143, "OOMKilled")),
])
def test_exit_outcome(code, signal, oom_kills, expected) -> None:
    assert state.exit_outcome(code=code, signal=signal, oom_kills=oom_kills) == expected


def test_state_file_round_trip_and_atomic_replace(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    record = StateRecord(id="c", state=State.RUNNING, created_at=1.5, pid=42, pid_start=1234)
    state.save(path, record)
    assert state.load(path) == record
    state.save(path, state.advance(record, State.EXITED, exit_code=1))
    assert state.load(path).state is State.EXITED
    assert sorted(os.listdir(tmp_path)) == ["state.json"]       # no temp file left
    assert state.load(tmp_path / "missing.json") is None


def test_observe_running_with_a_dead_pid_and_no_supervisor(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state.save(path, StateRecord(id="c", state=State.RUNNING, created_at=0.0, pid=os.getpid(), pid_start=1))
    observed = state.observe(path)                      # our PID, but not our start time
    assert (observed.state, observed.reason) == (State.EXITED, "Unknown")
    mine = StateRecord(id="c", state=State.RUNNING, created_at=0.0, pid=os.getpid(),
                       pid_start=state.linux.start_time(os.getpid()))
    state.save(path, mine)
    assert state.observe(path).state is State.RUNNING


def test_cri_timestamp() -> None:
    assert timestamp(1_700_000_000_123_456_789) == b"2023-11-14T22:13:20.123456789Z"
    assert timestamp(1_700_000_000_000_000_001) == b"2023-11-14T22:13:20.000000001Z"


def _writer(tmp_path: Path, **kw) -> CriLogWriter:
    return CriLogWriter(str(tmp_path / "c.log"), clock_ns=lambda: 0, **kw)


def test_cri_lines_partial_and_final(tmp_path: Path) -> None:
    log = _writer(tmp_path, max_bytes=1 << 20, max_files=1, max_line=8)
    log.feed("stdout", b"hello\nwor")
    log.feed("stderr", b"oops\n")
    log.feed("stdout", b"ld\n0123456789abc\nend")
    log.close()
    ts = "1970-01-01T00:00:00.000000000Z"
    assert (tmp_path / "c.log").read_text().splitlines() == [
        f"{ts} stdout F hello", f"{ts} stderr F oops", f"{ts} stdout F world",
        f"{ts} stdout P 01234567", f"{ts} stdout F 89abc", f"{ts} stdout F end"]


def test_cri_rotation_keeps_n_files_and_never_splits_a_record(tmp_path: Path) -> None:
    log = _writer(tmp_path, max_bytes=200, max_files=2)
    for i in range(30):
        log.feed("stdout", f"line {i:02d}\n".encode())
    log.close()
    names = sorted(os.listdir(tmp_path))
    assert names == ["c.log", "c.log.1", "c.log.2"]
    for name in names:
        text = (tmp_path / name).read_text()
        assert len(text) <= 200 and text.endswith("\n")
    assert (tmp_path / "c.log").read_text().splitlines()[-1].endswith("line 29")


@pytest.mark.parametrize("add, drop, privileged, expected", [
    ([], [], False, set(capabilities.DEFAULT)),
    (["NET_ADMIN"], ["CHOWN", "cap_net_raw"], False, set(capabilities.DEFAULT) - {"CHOWN", "NET_RAW"} | {"NET_ADMIN"}),
    (["NET_BIND_SERVICE"], ["ALL"], False, {"NET_BIND_SERVICE"}),
    ([], [], True, set(capabilities.NUMBERS) - {"SYS_RESOURCE"}),
])
def test_capability_sets(add, drop, privileged, expected) -> None:
    available = set(range(41)) - {capabilities.NUMBERS["SYS_RESOURCE"]}
    got = capabilities.resolve(add=add, drop=drop, privileged=privileged, available=available)
    assert got == sorted(capabilities.NUMBERS[n] for n in expected)


def test_capability_errors() -> None:
    with pytest.raises(ValueError, match="capabilities.drop: unknown capability 'NOPE'"):
        capabilities.resolve(add=[], drop=["NOPE"], privileged=False, available=set(range(41)))
    with pytest.raises(ValueError, match="capabilities.add: SYS_TIME: the node agent does not hold"):
        capabilities.resolve(add=["SYS_TIME"], drop=[], privileged=False, available={0, 1})


def test_resolve_in_root_never_leaves_the_root(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "real" / "dir").mkdir(parents=True)
    (root / "abs").symlink_to("/real")              # absolute: relative to the rootfs, not the host
    (root / "up").symlink_to("../../../../..")
    (root / "loop").symlink_to("loop")
    r = str(root)
    assert resolve_in_root(r, "/abs/dir/new") == f"{r}/real/dir/new"
    assert resolve_in_root(r, "/up/etc/passwd") == f"{r}/etc/passwd"
    assert resolve_in_root(r, "/../../x") == f"{r}/x"
    with pytest.raises(OSError, match="too many symlinks"):
        resolve_in_root(r, "/loop/x")


def _spec(**kw) -> ContainerSpec:
    base = dict(id="c1", pod_uid="pod1", name="app", layers=[Path("/layers/a")], args=["sh"])
    base.update(kw)
    return ContainerSpec(**base)


@pytest.mark.parametrize("changes, message", [
    (dict(id="../x"), "container id '../x'"),
    (dict(name="App"), "container name 'App': must be a lowercase RFC 1123 label"),
    (dict(layers=[]), "layers: at least one image layer"),
    (dict(layers=[Path("rel")]), r"layers\[0\] 'rel': must be an absolute path"),
    (dict(args=[]), "args: need a non-empty command"),
    (dict(env={"A=B": "x"}), "env 'A=B'"),
    (dict(uid=-1), "uid -1"),
    (dict(mounts=[Mount(source=Path("/x"), destination="rel")]), r"mounts\[0\]: destination 'rel'"),
    (dict(mounts=[Mount(source=Path("/x"), destination="/d", propagation="rshared")]),
     r"mounts\[0\]: propagation 'rshared'"),
    (dict(rlimits={"RLIMIT_NOPE": (1, 1)}), "rlimits: unknown resource 'RLIMIT_NOPE'"),
    (dict(rlimits={"RLIMIT_NOFILE": (10, 5)}), "soft 10 must be within hard 5"),
])
def test_spec_validation_names_the_field(changes, message) -> None:
    validate_container(_spec())
    with pytest.raises(ValueError, match=message):
        validate_container(_spec(**changes))


def test_overlay_options_put_the_top_layer_first_and_shorten_paths() -> None:
    layers = [Path(f"/var/lib/skiff/images/layers/{n}") for n in ("base", "mid", "top")]
    cwd, options = plan.overlay_options(layers=layers, upper=Path("/r/upper"), work=Path("/r/work"))
    assert cwd == "/var/lib/skiff/images/layers"
    assert options == "lowerdir=top:mid:base,upperdir=/r/upper,workdir=/r/work"
    with pytest.raises(ValueError, match="too many layers"):
        plan.overlay_options(layers=[Path(f"/l{i:04d}/{'x' * 40}") for i in range(200)],
                             upper=Path("/u"), work=Path("/w"))


def test_resolv_conf_drops_loopback_nameservers() -> None:
    host = "search example.org\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n"
    assert sandbox.resolv_text(host) == "search example.org\nnameserver 10.0.0.2\noptions edns0\n"
