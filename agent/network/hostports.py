"""hostPorts: which node ports are mapped to which pod, read from pod specs and
reserved per node.

A container port with a `hostPort` makes the node answer on that port (any of the
node's addresses; `hostIP` is not supported and ignored) and forward to the pod:

    spec.containers[0].ports[0] = {containerPort: 80, hostPort: 8080, protocol: TCP}
    →  node:8080/TCP  →  <pod IP>:80

This module holds the bookkeeping: parsing and validating the ports of a pod
(`host_ports_of`), and the reservations of the node (`HostPortTable`), saved as one
small JSON file per pod with hostPorts so a port stays taken across agent restarts -
and so reserving or releasing a pod's ports costs the same with 10 or 10,000 ports
mapped on the node. nftables.py turns the
reservations into elements of the one DNAT map. A port already reserved by another
pod is refused with the pod's name (the scheduler is meant to keep such pods off the
node; this is the last check).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .errors import NetworkError
from .statefile import read_json, write_json

PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True, order=True)
class HostPort:
    protocol: str          # TCP, UDP or SCTP
    host_port: int
    container_port: int

    def __str__(self) -> str:
        return f"{self.host_port}/{self.protocol}"


def pod_uid(pod: dict[str, Any]) -> str:
    uid = (pod.get("metadata") or {}).get("uid")
    if not uid or not isinstance(uid, str):
        raise NetworkError("pod has no metadata.uid")
    return uid


def pod_name(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or meta.get('uid')}"


def host_ports_of(pod: dict[str, Any]) -> list[HostPort]:
    """The pod's hostPorts, validated; each (protocol, hostPort) once."""
    found: dict[tuple[str, int], HostPort] = {}
    for c, container in enumerate((pod.get("spec") or {}).get("containers") or []):
        for p, port in enumerate(container.get("ports") or []):
            field = f"spec.containers[{c}].ports[{p}]"
            host_port = port.get("hostPort")
            if not host_port:
                continue
            protocol = port.get("protocol") or "TCP"
            container_port = port.get("containerPort")
            if protocol not in PROTOCOLS:
                raise NetworkError(f"{field}.protocol: unsupported value {protocol!r} (TCP, UDP or SCTP)")
            for name, value in (("hostPort", host_port), ("containerPort", container_port)):
                if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
                    raise NetworkError(f"{field}.{name}: must be a port number between 1 and 65535, not {value!r}")
            mapping = HostPort(protocol, host_port, container_port)
            earlier = found.setdefault((protocol, host_port), mapping)
            if earlier != mapping:
                raise NetworkError(f"{field}.hostPort: {mapping} is mapped twice, to container ports "
                                   f"{earlier.container_port} and {container_port}")
    return sorted(found.values())


class HostPortTable:
    """The node's hostPort reservations, pod UID -> its ports; one JSON file per pod in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._pods: dict[str, tuple[str, list[HostPort]]] = {}      # uid -> (pod name, ports)
        self._owner: dict[tuple[str, int], str] = {}                  # (protocol, port) -> uid

    def load(self) -> "HostPortTable":
        self._pods, self._owner = {}, {}
        for path in sorted(self.directory.glob("*.json")):
            document = read_json(path) or {}
            try:
                self._put(document["uid"], document["pod"],
                          [HostPort(proto, int(hp), int(cp)) for proto, hp, cp in document["ports"]])
            except (KeyError, TypeError, ValueError) as exc:
                raise NetworkError(f"network state file {path} is damaged: {exc!r}") from None
        return self

    def ports(self, uid: str) -> list[HostPort]:
        return list(self._pods.get(uid, ("", []))[1])

    def uids(self) -> list[str]:
        return list(self._pods)

    def conflicts(self, uid: str, ports: Iterable[HostPort]) -> list[str]:
        """One message per port of `ports` reserved by a pod other than `uid`."""
        messages = []
        for port in ports:
            owner = self._owner.get((port.protocol, port.host_port))
            if owner is not None and owner != uid:
                messages.append(f"hostPort {port} is already used by pod {self._pods[owner][0]} on this node")
        return messages

    def set(self, uid: str, name: str, ports: list[HostPort]) -> None:
        """Reserve exactly `ports` for pod `uid` (none: drop its reservations), and save."""
        if self._pods.get(uid, ("", []))[1] == sorted(ports):
            return
        self._drop(uid)
        if ports:
            self._put(uid, name, ports)
        self._save(uid)

    def remove(self, uid: str) -> None:
        if uid in self._pods:
            self._drop(uid)
            self._save(uid)

    def _put(self, uid: str, name: str, ports: list[HostPort]) -> None:
        self._pods[uid] = (name, sorted(ports))
        for port in ports:
            self._owner[(port.protocol, port.host_port)] = uid

    def _drop(self, uid: str) -> None:
        for port in self._pods.pop(uid, ("", []))[1]:
            self._owner.pop((port.protocol, port.host_port), None)

    def _file(self, uid: str) -> Path:
        return self.directory / f"{hashlib.sha256(uid.encode()).hexdigest()[:32]}.json"

    def _save(self, uid: str) -> None:
        path = self._file(uid)
        try:
            if uid in self._pods:
                name, ports = self._pods[uid]
                write_json(path, {"uid": uid, "pod": name,
                                  "ports": [[p.protocol, p.host_port, p.container_port] for p in ports]})
            elif path.exists():
                path.unlink()
                dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            raise NetworkError(f"could not save the hostPort reservations of pod {uid} in {self.directory}: "
                               f"{exc}") from exc
