"""Probes and lifecycle hooks of running containers, connected to the pod workers.

`ProbeManager.start()` gives each new container instance its `Prober`
(agent/probes.py: Kubernetes' timing and thresholds) whose verdicts land in the
pod's PodState — readiness flips `ready`, a passed startup probe sets
`started`, a failed liveness (or startup) probe marks the container
`unhealthy` — and each verdict triggers a sync of the pod, which restarts or
un-readies as the spec says. Exec probes and hooks run inside the container
through the runtime's exec.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from controlplane.client.events import WARNING, EventRecorder

from agent.podstate import PodState
from agent.probes import Prober, probe_once


class ProbeManager:
    def __init__(self, *, runtime: Any, recorder: EventRecorder, trigger: Callable[[str], None]):
        self.runtime = runtime
        self.recorder = recorder
        self.trigger = trigger

    def _exec_in(self, cid: str) -> Callable[[list[str], float], Any]:
        async def run(argv: list[str], timeout: float) -> tuple[int, bytes]:
            proc = await self.runtime.exec(cid, argv)
            proc.stdin.close()

            async def collect() -> tuple[int, bytes]:
                out = await proc.stdout.read()
                err = await proc.stderr.read() if proc.stderr is not None else b""
                return await proc.wait(), out + err
            try:
                return await asyncio.wait_for(collect(), timeout)
            except asyncio.TimeoutError:
                proc.send_signal()
                raise
        return run

    def start(self, pod: dict[str, Any], container: dict[str, Any], cid: str, state: PodState) -> Prober | None:
        name = container["name"]
        state.ready[name] = not container.get("readinessProbe")
        state.started[name] = not container.get("startupProbe")
        if not any(container.get(k) for k in ("livenessProbe", "readinessProbe", "startupProbe")):
            return None

        def on_result(kind: str, container_name: str, ok: bool, message: str) -> None:
            if kind == "readiness":
                state.ready[container_name] = ok
            elif kind == "startup" and ok:
                state.started[container_name] = True
            elif not ok:  # liveness, or a startup probe that gave up: restart
                state.unhealthy[container_name] = message
            if not ok:
                self.recorder.event(pod, WARNING, "Unhealthy", message)
            self.trigger(state.uid)

        prober = Prober(container, pod_ip=state.pod_ip or "127.0.0.1", exec_in_container=self._exec_in(cid),
                        on_result=on_result, started_at=time.monotonic())
        prober.start()
        return prober

    async def run_hook(self, hook: dict[str, Any], *, pod: dict[str, Any], container: dict[str, Any], cid: str,
                       pod_ip: str) -> tuple[bool, str]:
        """postStart / preStop: the handler runs once (exec, httpGet or tcpSocket)."""
        result = await probe_once({**hook, "timeoutSeconds": 30}, pod_ip=pod_ip or "127.0.0.1",
                                  container_ports=list(container.get("ports") or []),
                                  exec_in_container=self._exec_in(cid))
        return result.ok, result.message
