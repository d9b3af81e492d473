"""Probes and lifecycle hooks: how the agent checks and notifies a container.

A `Probe` (liveness, readiness, startup) runs one handler — a command in the
container (`exec`), an HTTP GET, or a TCP connect — on a schedule with
thresholds. A `LifecycleHandler` (postStart, preStop) runs one handler once.
Containers (api/container.py) hold them; the agent's probes.py runs them.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from api.base import ApiModel
from api.errors import FieldError, invalid, required
from api.fieldtypes import IntOrString, check_port_ref


class ExecAction(ApiModel):
    """Runs a command inside the container; exit status 0 is success."""

    command: Optional[list[str]] = Field(None, description="Command line to run; not run in a shell.")


class HTTPHeader(ApiModel):
    """A header to send with an HTTP probe."""

    name: str = Field(description="Header field name.")
    value: str = Field(description="Header field value.")


class HTTPGetAction(ApiModel):
    """An HTTP GET; a status from 200 to 399 is success."""

    path: str = Field("/", description="Path to request on the HTTP server.")
    port: IntOrString = Field(description="Port number or name of a container port.")
    host: Optional[str] = Field(None, description="Host to connect to; defaults to the pod IP.")
    scheme: Literal["HTTP", "HTTPS"] = Field("HTTP", description="Scheme to use: HTTP or HTTPS.")
    http_headers: Optional[list[HTTPHeader]] = Field(None, description="Custom headers to set in the request.")


class TCPSocketAction(ApiModel):
    """Opens a TCP connection; success when it connects."""

    port: IntOrString = Field(description="Port number or name of a container port.")
    host: Optional[str] = Field(None, description="Host to connect to; defaults to the pod IP.")


class SleepAction(ApiModel):
    """Sleeps for a while (lifecycle hooks only)."""

    seconds: int = Field(ge=0, description="Seconds to sleep.")


class Probe(ApiModel):
    """A periodic check of a container. Exactly one of exec, httpGet, tcpSocket."""

    exec: Optional[ExecAction] = Field(None, description="Run a command in the container.")
    http_get: Optional[HTTPGetAction] = Field(None, description="Perform an HTTP GET.")
    tcp_socket: Optional[TCPSocketAction] = Field(None, description="Open a TCP connection.")
    initial_delay_seconds: int = Field(0, ge=0, description="Seconds after the container starts before "
                                                            "the first probe.")
    period_seconds: int = Field(10, ge=1, description="How often to probe, in seconds.")
    timeout_seconds: int = Field(1, ge=1, description="Seconds after which one probe times out.")
    success_threshold: int = Field(1, ge=1, description="Consecutive successes to count as passing again; "
                                                        "must be 1 for liveness and startup.")
    failure_threshold: int = Field(3, ge=1, description="Consecutive failures to count as failed.")
    termination_grace_period_seconds: Optional[int] = Field(None, ge=1, description="Grace period for the "
                                                            "kill after a failed liveness or startup probe.")


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class LifecycleHandler(ApiModel):
    """An action run once at a lifecycle event. Exactly one of exec, httpGet, tcpSocket, sleep."""

    exec: Optional[ExecAction] = Field(None, description="Run a command in the container.")
    http_get: Optional[HTTPGetAction] = Field(None, description="Perform an HTTP GET.")
    tcp_socket: Optional[TCPSocketAction] = Field(None, description="Open a TCP connection (deprecated).")
    sleep: Optional[SleepAction] = Field(None, description="Sleep for a number of seconds.")


class Lifecycle(ApiModel):
    """Actions the agent runs after a container starts and before it is stopped."""

    post_start: Optional[LifecycleHandler] = Field(None, description="Run right after the container starts.")
    pre_stop: Optional[LifecycleHandler] = Field(None, description="Run before the container is stopped.")


def _check_handler(handler: Probe | LifecycleHandler, path: str) -> list[FieldError]:
    actions: list[tuple[str, object]] = [("exec", handler.exec), ("httpGet", handler.http_get),
                                         ("tcpSocket", handler.tcp_socket)]
    if isinstance(handler, LifecycleHandler):
        actions.append(("sleep", handler.sleep))
    present = [(name, action) for name, action in actions if action is not None]
    if not present:
        return [required(path, "must specify a handler type")]
    if len(present) > 1:
        return [FieldError(f"{path}.{present[1][0]}", "Forbidden: may not specify more than 1 handler type")]
    name, action = present[0]
    if isinstance(action, ExecAction) and not action.command:
        return [required(f"{path}.exec.command")]
    if isinstance(action, (HTTPGetAction, TCPSocketAction)):
        return check_port_ref(action.port, f"{path}.{name}.port")
    return []


def check_probe(probe: Probe, path: str, *, kind: str) -> list[FieldError]:
    """kind is "liveness", "readiness" or "startup"."""
    errors = _check_handler(probe, path)
    if kind in ("liveness", "startup") and probe.success_threshold != 1:
        errors.append(invalid(f"{path}.successThreshold", probe.success_threshold, "must be 1"))
    return errors


def check_lifecycle(lifecycle: Lifecycle, path: str) -> list[FieldError]:
    errors = []
    if lifecycle.post_start is not None:
        errors += _check_handler(lifecycle.post_start, f"{path}.postStart")
    if lifecycle.pre_stop is not None:
        errors += _check_handler(lifecycle.pre_stop, f"{path}.preStop")
    return errors
