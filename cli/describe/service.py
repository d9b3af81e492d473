"""`describe service`, following kubectl's describeService: addresses, each port with its
target port, node port and ready endpoints (read from the Service's EndpointSlices)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.printing.columns import format_labels, get
from cli.describe.writer import Out, describe_events, identity
from api.printing.timefmt import now


def format_slice_endpoints(slices: list[dict[str, Any]], port_name: str) -> str:
    """kubectl's formatEndpointSlices: the ready ip:port of the port named `port_name`, three
    at most, then ` + N more...`; `<none>` without slices."""
    if not slices:
        return "<none>"
    found: list[str] = []
    count = 0
    for s in slices:
        endpoints = [ep for ep in s.get("endpoints") or []
                     if (ep.get("conditions") or {}).get("ready") is not False and ep.get("addresses")]
        ports = s.get("ports") or []
        if not ports:
            count += len(endpoints)
            found += [ep["addresses"][0] for ep in endpoints]
            continue
        for port in ports:
            if (port.get("name") or "") != port_name:
                continue
            count += len(endpoints)
            found += [f"{ep['addresses'][0]}:{port.get('port')}" for ep in endpoints]
    text = ",".join(found[:3])
    return f"{text} + {count - 3} more..." if count > 3 else text


# One w(...) line per field in kubectl describe's order: alike in shape (the `duplicates` tool
# pairs them) and kept literal, so the output reads against kubectl's line by line.
def describe_service(svc: dict[str, Any], slices: list[dict[str, Any]], events: list[dict[str, Any]], *,
                     at: datetime | None = None) -> str:
    at = at or now()
    w = Out()
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    identity(w, meta)
    w(0, f"Selector:\t{format_labels(spec.get('selector')) if spec.get('selector') else '<none>'}\n")
    w(0, f"Type:\t{spec.get('type', 'ClusterIP')}\n")
    if spec.get("ipFamilyPolicy"):
        w(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    w(0, f"IP Families:\t{','.join(spec.get('ipFamilies') or []) or '<none>'}\n")
    w(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    w(0, f"IPs:\t{','.join(spec.get('clusterIPs') or []) or '<none>'}\n")
    if spec.get("externalIPs"):
        w(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    if spec.get("loadBalancerIP"):
        w(0, f"IP:\t{spec['loadBalancerIP']}\n")
    if spec.get("type") == "ExternalName":
        w(0, f"External Name:\t{spec.get('externalName', '')}\n")
    ingress = [i.get("ip") or i.get("hostname") for i in get(svc, "status.loadBalancer.ingress", [])]
    if any(ingress):
        w(0, f"LoadBalancer Ingress:\t{', '.join(i for i in ingress if i)}\n")
    for port in spec.get("ports") or []:
        name = port.get("name") or "<unset>"
        protocol = port.get("protocol", "TCP")
        w(0, f"Port:\t{name}\t{port.get('port')}/{protocol}\n")
        w(0, f"TargetPort:\t{port.get('targetPort', port.get('port'))}/{protocol}\n")
        if port.get("nodePort"):
            w(0, f"NodePort:\t{name}\t{port['nodePort']}/{protocol}\n")
        w(0, f"Endpoints:\t{format_slice_endpoints(slices, port.get('name') or '')}\n")
    w(0, f"Session Affinity:\t{spec.get('sessionAffinity', 'None')}\n")
    if spec.get("externalTrafficPolicy"):
        w(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}\n")
    if spec.get("internalTrafficPolicy"):
        w(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}\n")
    describe_events(w, events, at)
    return w.text()
