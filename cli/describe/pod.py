"""`describe pod` in kubectl's layout (describePod in kubectl's describe.go), field by field:
Name ... Controlled By, Init Containers / Containers (image, ports, command, state,
last state, ready, restarts, limits, requests, probes, environment, mounts),
Conditions, Volumes, QoS Class, Node-Selectors, Tolerations, Events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.errors import ValidationFailed
from api.pod import qos_class
from api.registry import parse_object
from api.printing.columns import get
from cli.describe.writer import LAST_APPLIED, Out, controlled_by, describe_events, multiline, none_if_empty, true_false
from api.printing.timefmt import now, rfc1123z, since


def _ports(ports: list[dict[str, Any]], key: str) -> str:
    return ",".join(f"{p.get(key, 0)}/{p.get('protocol', 'TCP')}" for p in ports)


# One w(...) line per field in kubectl describe's order: alike in shape (the `duplicates` tool
# pairs them) and kept literal, so the output reads against kubectl's line by line.
def _state(w: Out, title: str, state: dict[str, Any]) -> None:
    if state.get("running") is not None:
        w(2, f"{title}:\tRunning\n")
        w(3, f"Started:\t{rfc1123z(get(state, 'running.startedAt'))}\n")
    elif state.get("terminated") is not None:
        term = state["terminated"]
        w(2, f"{title}:\tTerminated\n")
        if term.get("reason"):
            w(3, f"Reason:\t{term['reason']}\n")
        if term.get("message"):
            w(3, f"Message:\t{term['message']}\n")
        w(3, f"Exit Code:\t{term.get('exitCode', 0)}\n")
        if term.get("signal"):
            w(3, f"Signal:\t{term['signal']}\n")
        w(3, f"Started:\t{rfc1123z(term.get('startedAt'))}\n")
        w(3, f"Finished:\t{rfc1123z(term.get('finishedAt'))}\n")
    else:
        w(2, f"{title}:\tWaiting\n")
        if get(state, "waiting.reason"):
            w(3, f"Reason:\t{state['waiting']['reason']}\n")


def _probe(probe: dict[str, Any]) -> str:
    if "httpGet" in probe:
        h = probe["httpGet"]
        action = f"http-get {h.get('scheme', 'HTTP').lower()}://{h.get('host', '')}:{h.get('port')}{h.get('path', '/')}"
    elif "tcpSocket" in probe:
        action = f"tcp-socket {get(probe, 'tcpSocket.host', '')}:{get(probe, 'tcpSocket.port')}"
    elif "exec" in probe:
        action = "exec [" + " ".join(get(probe, "exec.command", [])) + "]"
    else:
        action = "unknown"
    return (f"{action} delay={probe.get('initialDelaySeconds', 0)}s timeout={probe.get('timeoutSeconds', 1)}s "
            f"period={probe.get('periodSeconds', 10)}s #success={probe.get('successThreshold', 1)} "
            f"#failure={probe.get('failureThreshold', 3)}")


def _env(w: Out, container: dict[str, Any]) -> None:
    env = container.get("env") or []
    for source in container.get("envFrom") or []:
        for kind, label in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            if kind in source:
                w(2, "Environment Variables from:\n")
                w(3, f"{source[kind].get('name')}\t{label}\tOptional: "
                     f"{str(bool(source[kind].get('optional'))).lower()}\n")
    w(2, "Environment:\t<none>\n" if not env else "Environment:\n")
    for e in env:
        source = e.get("valueFrom")
        if source is None:
            lines = str(e.get("value", "")).split("\n")
            w(3, f"{e.get('name')}:\t{lines[0]}\n")
            for line in lines[1:]:
                w(3, f"\t{line}\n")
        elif "fieldRef" in source:
            ref = source["fieldRef"]
            w(3, f"{e.get('name')}:\t ({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath')})\n")
        elif "resourceFieldRef" in source:
            w(3, f"{e.get('name')}:\t ({get(source, 'resourceFieldRef.resource')})\n")
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            w(3, f"{e.get('name')}:\t<set to the key '{ref.get('key')}' in secret '{ref.get('name')}'>\t"
                 f"Optional: {str(bool(ref.get('optional'))).lower()}\n")
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            w(3, f"{e.get('name')}:\t<set to the key '{ref.get('key')}' of config map '{ref.get('name')}'>\t"
                 f"Optional: {str(bool(ref.get('optional'))).lower()}\n")


def _containers(w: Out, title: str, specs: list[dict[str, Any]], statuses: list[dict[str, Any]]) -> None:
    by_name = {s.get("name"): s for s in statuses}
    w(0, f"{title}:\n")
    for c in specs:
        status = by_name.get(c.get("name"))
        w(1, f"{c.get('name')}:\n")
        if status is not None:
            w(2, f"Container ID:\t{status.get('containerID', '')}\n")
        w(2, f"Image:\t{c.get('image', '')}\n")
        if status is not None:
            w(2, f"Image ID:\t{status.get('imageID', '')}\n")
        ports = c.get("ports") or []
        port_text, host_text = _ports(ports, "containerPort"), _ports(ports, "hostPort")
        w(2, f"Ports:\t{port_text}\n" if "," in port_text else f"Port:\t{none_if_empty(port_text)}\n")
        w(2, f"Host Ports:\t{host_text}\n" if "," in host_text else f"Host Port:\t{none_if_empty(host_text)}\n")
        for key, label in (("command", "Command"), ("args", "Args")):
            if c.get(key):
                w(2, f"{label}:\n")
                for part in c[key]:
                    for line in str(part).split("\n"):
                        w(3, f"{line}\n")
        if status is not None:
            _state(w, "State", status.get("state") or {})
            if get(status, "lastState.terminated") is not None:
                _state(w, "Last State", status["lastState"])
            w(2, f"Ready:\t{true_false(status.get('ready'))}\n")
            w(2, f"Restart Count:\t{status.get('restartCount', 0)}\n")
        for key, label in (("limits", "Limits"), ("requests", "Requests")):
            values = get(c, f"resources.{key}", {})
            if values:
                w(2, f"{label}:\n")
                for name in sorted(values):
                    w(3, f"{name}:\t{values[name]}\n")
        for key, label in (("livenessProbe", "Liveness"), ("readinessProbe", "Readiness"),
                           ("startupProbe", "Startup")):
            if c.get(key):
                w(2, f"{label}:\t{_probe(c[key])}\n")
        _env(w, c)
        mounts = sorted(c.get("volumeMounts") or [], key=lambda m: m.get("name", ""))
        w(2, "Mounts:\t<none>\n" if not mounts else "Mounts:\n")
        for m in mounts:
            flags = ["ro" if m.get("readOnly") else "rw"]
            if m.get("subPath"):
                flags.append(f'path="{m["subPath"]}"')
            w(3, f"{m.get('mountPath')} from {m.get('name')} ({','.join(flags)})\n")


_VOLUME_TYPES = {
    "emptyDir": ("EmptyDir (a temporary directory that shares a pod's lifetime)",
                 [("Medium", "medium"), ("SizeLimit", "sizeLimit")]),
    "hostPath": ("HostPath (bare host directory volume)", [("Path", "path"), ("HostPathType", "type")]),
    "configMap": ("ConfigMap (a volume populated by a ConfigMap)", [("Name", "name"), ("Optional", "optional")]),
    "secret": ("Secret (a volume populated by a Secret)", [("SecretName", "secretName"), ("Optional", "optional")]),
    "downwardAPI": ("DownwardAPI (a volume populated by information about the pod)", []),
}


def _volumes(w: Out, volumes: list[dict[str, Any]]) -> None:
    if not volumes:
        w(0, "Volumes:\t<none>\n")
        return
    w(0, "Volumes:\n")
    for v in volumes:
        w(1, f"{v.get('name')}:\n")
        for key, (label, fields) in _VOLUME_TYPES.items():
            if key in v:
                source = v[key] or {}
                w(2, f"Type:\t{label}\n")
                for title, field in fields:
                    value = source.get(field)
                    if isinstance(value, bool) or field == "optional":
                        value = str(bool(value)).lower()
                    w(2, f"{title}:\t{'' if value is None else value}\n")
                break
        else:
            w(2, f"Type:\t{next((k for k in v if k != 'name'), 'unknown')}\n")


def _tolerations(w: Out, tolerations: list[dict[str, Any]]) -> None:
    if not tolerations:
        w(0, "Tolerations:\t<none>\n")
        return
    for i, t in enumerate(tolerations):
        text = t.get("key", "")
        if t.get("value"):
            text += f"={t['value']}"
        if t.get("effect"):
            text += f":{t['effect']}"
        if t.get("operator") == "Exists" and not t.get("value"):
            text += " op=Exists" if (t.get("key") or t.get("effect")) else "op=Exists"
        if t.get("tolerationSeconds") is not None:
            text += f" for {t['tolerationSeconds']}s"
        w(0, f"Tolerations:\t{text}\n" if i == 0 else f"\t{text}\n")


def _qos(pod: dict[str, Any]) -> str:
    if get(pod, "status.qosClass"):
        return pod["status"]["qosClass"]
    try:
        return qos_class(parse_object(pod))  # type: ignore[arg-type]
    except ValidationFailed:
        return ""


# One w(...) line per field in kubectl describe's order: alike in shape (the `duplicates` tool
# pairs them) and kept literal, so the output reads against kubectl's line by line.
def describe_pod(pod: dict[str, Any], events: list[dict[str, Any]], *, at: datetime | None = None) -> str:
    at = at or now()
    w = Out()
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    w(0, f"Name:\t{meta.get('name', '')}\n")
    w(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w(0, f"Priority:\t{spec.get('priority', 0)}\n")
    if spec.get("priorityClassName"):
        w(0, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    w(0, f"Service Account:\t{spec.get('serviceAccountName', 'default')}\n")
    node = spec.get("nodeName")
    w(0, f"Node:\t{node}/{status.get('hostIP', '')}\n" if node else "Node:\t<none>\n")
    if status.get("startTime"):
        w(0, f"Start Time:\t{rfc1123z(status['startTime'])}\n")
    multiline(w, "Labels", meta.get("labels"))
    multiline(w, "Annotations", meta.get("annotations"), skip=(LAST_APPLIED,))
    phase = status.get("phase", "")
    if meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        w(0, f"Status:\tTerminating (lasts {since(meta['deletionTimestamp'], at)})\n")
        w(0, f"Termination Grace Period:\t{meta.get('deletionGracePeriodSeconds', 0)}s\n")
    else:
        w(0, f"Status:\t{phase}\n")
    if status.get("reason"):
        w(0, f"Reason:\t{status['reason']}\n")
    if status.get("message"):
        w(0, f"Message:\t{status['message']}\n")
    w(0, f"IP:\t{status.get('podIP', '')}\n")
    ips = status.get("podIPs") or []
    if not ips:
        w(0, "IPs:\t<none>\n")
    else:
        w(0, "IPs:\n")
        for ip in ips:
            w(1, f"IP:\t{ip.get('ip', '')}\n")
    if owner := controlled_by(pod):
        w(0, f"Controlled By:\t{owner}\n")
    if status.get("nominatedNodeName"):
        w(0, f"NominatedNodeName:\t{status['nominatedNodeName']}\n")
    if spec.get("initContainers"):
        _containers(w, "Init Containers", spec["initContainers"], status.get("initContainerStatuses") or [])
    _containers(w, "Containers", spec.get("containers") or [], status.get("containerStatuses") or [])
    if status.get("conditions"):
        w(0, "Conditions:\n")
        w(1, "Type\tStatus\n")
        for c in status["conditions"]:
            w(1, f"{c.get('type')} \t{c.get('status')} \n")
    _volumes(w, spec.get("volumes") or [])
    w(0, f"QoS Class:\t{_qos(pod)}\n")
    multiline(w, "Node-Selectors", spec.get("nodeSelector"))
    _tolerations(w, spec.get("tolerations") or [])
    describe_events(w, events, at)
    return w.text()
