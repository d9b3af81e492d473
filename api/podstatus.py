"""What the agent reports about a pod: phase, conditions, IPs and container states.

PodStatus is written only through the status subresource, by the scheduler
(the PodScheduled condition) and by the agent that runs the pod (everything
else). api/pod.py holds the Pod kind and its spec.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from api.base import ApiModel

ConditionStatus = Literal["True", "False", "Unknown"]
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class PodCondition(ApiModel):
    """One aspect of the pod's state: PodScheduled, Initialized, ContainersReady, Ready."""

    type: str = Field(description="Condition type, e.g. Ready or PodScheduled.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Optional[str] = Field(None, description="One-word CamelCase reason for the last transition.")
    message: Optional[str] = Field(None, description="Human-readable details of the last transition.")
    last_transition_time: Optional[str] = Field(None, description="When the status last changed (RFC 3339).")
    last_probe_time: Optional[str] = Field(None, description="When the condition was last probed (RFC 3339).")


class PodIP(ApiModel):
    """An IP address of the pod."""

    ip: str = Field(description="The IP address.")


class ContainerStateWaiting(ApiModel):
    """The container is not running yet (pulling its image, backing off after a crash...)."""

    reason: Optional[str] = Field(None, description="Why it waits, e.g. ContainerCreating or CrashLoopBackOff.")
    message: Optional[str] = Field(None, description="Details of why it waits.")


class ContainerStateRunning(ApiModel):
    """The container is running."""

    started_at: Optional[str] = Field(None, description="When it (re)started (RFC 3339).")


class ContainerStateTerminated(ApiModel):
    """The container ran and exited."""

    exit_code: int = Field(description="Exit status of the container's process.")
    signal: Optional[int] = Field(None, description="Signal that ended the process, if any.")
    reason: Optional[str] = Field(None, description="Why it ended, e.g. Completed, Error or OOMKilled.")
    message: Optional[str] = Field(None, description="The termination message.")
    started_at: Optional[str] = Field(None, description="When it started (RFC 3339).")
    finished_at: Optional[str] = Field(None, description="When it ended (RFC 3339).")
    container_id: Optional[str] = Field(None, alias="containerID", description="ID of the container that ended.")


class ContainerState(ApiModel):
    """A container's state; at most one of waiting, running, terminated is set."""

    waiting: Optional[ContainerStateWaiting] = Field(None, description="Set while the container waits to run.")
    running: Optional[ContainerStateRunning] = Field(None, description="Set while the container runs.")
    terminated: Optional[ContainerStateTerminated] = Field(None, description="Set once the container exited.")


class ContainerStatus(ApiModel):
    """The observed state of one container."""

    name: str = Field(description="Name of the container in the pod spec.")
    state: Optional[ContainerState] = Field(None, description="Current state.")
    last_state: Optional[ContainerState] = Field(None, description="State of the previous run, if any.")
    ready: bool = Field(False, description="Whether the readiness probe passes.")
    restart_count: int = Field(0, ge=0, description="Times the container has been restarted.")
    image: str = Field("", description="The image it runs.")
    image_id: Optional[str] = Field(None, alias="imageID", description="Digest of the image it runs.")
    container_id: Optional[str] = Field(None, alias="containerID", description="ID of the container, "
                                                                               "<runtime>://<id>.")
    started: Optional[bool] = Field(None, description="Whether it started and passed its startup probe.")


class PodStatus(ApiModel):
    """The observed state of the pod."""

    phase: Optional[Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]] = Field(
        None, description="Pending, Running, Succeeded, Failed or Unknown.")
    conditions: Optional[list[PodCondition]] = Field(None, description="Current service state of the pod.")
    message: Optional[str] = Field(None, description="Human-readable reason for the pod's state.")
    reason: Optional[str] = Field(None, description="Brief CamelCase reason, e.g. Evicted.")
    host_ip: Optional[str] = Field(None, alias="hostIP", description="IP of the node the pod runs on.")
    pod_ip: Optional[str] = Field(None, alias="podIP", description="The pod's primary IP address.")
    pod_ips: Optional[list[PodIP]] = Field(None, alias="podIPs", description="All IP addresses of the pod.")
    start_time: Optional[str] = Field(None, description="When the agent accepted the pod (RFC 3339).")
    nominated_node_name: Optional[str] = Field(None, description="Node the pod is expected to run on after "
                                                                 "preemption.")
    qos_class: Optional[Literal["Guaranteed", "Burstable", "BestEffort"]] = Field(
        None, description="Quality of service class from the resource requests and limits.")
    init_container_statuses: Optional[list[ContainerStatus]] = Field(None, description="States of the init "
                                                                                       "containers.")
    container_statuses: Optional[list[ContainerStatus]] = Field(None, description="States of the containers.")

    def condition(self, type_: str) -> PodCondition | None:
        for c in self.conditions or []:
            if c.type == type_:
                return c
        return None
