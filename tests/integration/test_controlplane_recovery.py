"""Crash recovery of a control plane with its embedded etcd: etcd dies with it, a stale
etcd from a previous run is stopped (by its recorded PID, never by name), and after etcd
itself is killed the API is back within 2 s of etcd's return."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from controlplane.client import Client, Unavailable
from procs import ControlPlane, alive, port_open, wait_for

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


def configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": {"k": name}}


def etcd_pid(state: Path) -> int:
    return int((state / "etcd.pid").read_text())


def etcd_port(state: Path) -> int:
    return json.loads((state / "etcd.json").read_text())["client"]


async def test_kill_9_of_the_control_plane_takes_its_etcd_along(tmp_path):
    state = tmp_path / "cp"
    cp = ControlPlane(state).start()
    try:
        async with Client(cp.address, credentials=cp.credentials) as client:
            await client.create(configmap("kept"))
        etcd = etcd_pid(state)
        assert alive(etcd)
        cp.kill()   # SIGKILL: no shutdown code runs
        wait_for(lambda: not alive(etcd), timeout=10, what="the embedded etcd to die with its control plane")
        assert not port_open(etcd_port(state))
        cp = ControlPlane(state, port=cp.port).start()   # starts cleanly on the same ports
        async with Client(cp.address, credentials=cp.credentials) as client:
            assert (await client.get("configmaps", "kept", "default"))["data"] == {"k": "kept"}
    finally:
        cp.stop()
    assert not (state / "etcd.pid").exists() and not alive(etcd_pid_or_zero(state))


def etcd_pid_or_zero(state: Path) -> int:
    try:
        return etcd_pid(state)
    except (OSError, ValueError):
        return 0


async def test_a_stale_etcd_on_the_same_data_dir_is_stopped_by_its_recorded_pid(tmp_path):
    """An etcd orphaned by an older control plane (no parent-death signal) still holds the
    ports: the next start finds it by etcd.pid, checks it is etcd on this data dir, stops it."""
    from controlplane.etcd import EmbeddedEtcd
    state = tmp_path / "cp"
    embedded = EmbeddedEtcd(state)
    argv = [a for a in embedded._args() if a not in ("setpriv", "--pdeathsig", "TERM", "--")]
    embedded.data_dir.mkdir(parents=True)
    with open(tmp_path / "orphan.log", "ab") as log:
        orphan = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
    try:
        embedded.pid_path.write_text(f"{orphan.pid}\n")
        wait_for(lambda: port_open(embedded.client_port), timeout=15, what="the orphan etcd to listen")
        cp = ControlPlane(state).start()
        try:
            assert orphan.wait(10) is not None          # stopped (SIGTERM: it exits 0 or by the signal)
            assert etcd_pid(state) != orphan.pid and alive(etcd_pid(state))
            assert "still serves" in cp.log_path.read_text()
        finally:
            cp.stop()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


async def test_a_pid_file_naming_another_process_is_left_alone(tmp_path):
    """The recorded PID is verified: a live process that is not this data dir's etcd
    (a reused PID) is never signalled."""
    state = tmp_path / "cp"
    state.mkdir()
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (state / "etcd.pid").write_text(f"{bystander.pid}\n")
        cp = ControlPlane(state).start()
        cp.stop()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


async def test_api_is_back_within_2s_of_etcds_return(tmp_path):
    """kill -9 of the embedded etcd, twice: the supervisor restarts it at once (the backoff
    resets after a run that lasted) and the API serves writes within 2 s of etcd listening."""
    state = tmp_path / "cp"
    cp = ControlPlane(state).start()
    try:
        async with Client(cp.address, credentials=cp.credentials, timeout=5) as client:
            await client.create(configmap("before"))
            for round_ in range(2):
                await asyncio.sleep(5.5)   # a stable run, as between two real outages
                old = etcd_pid(state)
                killed = time.monotonic()
                os.kill(old, signal.SIGKILL)
                await asyncio.to_thread(wait_for, lambda: etcd_pid(state) != old and port_open(etcd_port(state)),
                                        timeout=15, interval=0.01, what="etcd to be restarted")
                returned = time.monotonic()
                while True:
                    try:
                        await client.create(configmap(f"after-{round_}"))
                        break
                    except Unavailable:
                        assert time.monotonic() - returned < 10
                        await asyncio.sleep(0.02)
                back = time.monotonic()
                print(f"round {round_}: etcd back {returned - killed:.2f}s after kill -9, "
                      f"API back {back - returned:.2f}s after etcd")
                assert back - returned < 2.0, f"API back {back - returned:.2f}s after etcd returned"
                # restarted after RESTART_DELAY (0.2 s: the backoff was reset by the stable run)
                # plus etcd's own start, which a loaded machine slows
                assert returned - killed < 5.0, f"etcd restarted {returned - killed:.2f}s after the kill"
            assert (await client.get("configmaps", "before", "default"))["data"] == {"k": "before"}
    finally:
        cp.stop()


async def test_the_restart_backoff_grows_in_a_crash_loop_and_resets_after_a_stable_run(tmp_path, monkeypatch):
    """The supervisor of the embedded etcd (a real etcd, in this process): restarts come
    0.2, 0.4, 0.8 s after quick deaths, and 0.2 s again once etcd has run STABLE_RUN."""
    from controlplane import etcd as etcd_module
    monkeypatch.setattr(etcd_module, "STABLE_RUN", 1.5)
    embedded = etcd_module.EmbeddedEtcd(tmp_path / "cp")
    await embedded.start()
    delays = []
    try:
        async def kill_and_time() -> float:
            old = embedded.process.pid
            killed = time.monotonic()
            os.kill(old, signal.SIGKILL)
            while embedded.process.pid == old:
                await asyncio.sleep(0.01)
            return time.monotonic() - killed
        await asyncio.sleep(2)            # a stable first run
        for _ in range(3):                # then a crash loop: each death comes at once
            delays.append(await kill_and_time())
        await asyncio.sleep(2)            # a stable run again
        delays.append(await kill_and_time())
    finally:
        await embedded.stop()
    print("restart delays:", " ".join(f"{d:.2f}s" for d in delays))
    first, second, third, after_stable = delays
    # (lower bounds are the backoff itself; upper ones leave room for a loaded machine)
    assert 0.2 <= first < 0.4 + 0.3 and 0.4 <= second < 0.8 and 0.8 <= third < 1.5
    assert 0.2 <= after_stable < 0.4 + 0.3
    assert not embedded.pid_path.exists()
