"""Discovery, as kubectl reads it: /version, /api, /apis and each group-version's resources.

Everything comes from the registry of kinds (api/registry.py): a kind registered there is
served here, with its plural, singular, short names and scope. Skiff's verbs map to
Kubernetes' (`apply` is a `patch`); the `all` category (what `kubectl get all` shows)
is Kubernetes' list of workload kinds. The aggregated form (apidiscovery.k8s.io/v2, what
kubectl asks for first, so that /api and /apis answer everything in two requests) is
served when the Accept header asks for it (`aggregated`); otherwise the plain lists.
"""

from __future__ import annotations

import platform
from typing import Any

from api.registry import ResourceInfo, all_resources
from controlplane.rest.scale import SCALABLE

# The Kubernetes API version whose wire format Skiff follows (kubectl compares it with its own).
KUBE_MAJOR, KUBE_MINOR = "1", "32"
# Kubernetes' `all` category (kubectl get all).
ALL_CATEGORY = frozenset({"pods", "replicationcontrollers", "services", "daemonsets", "deployments", "replicasets",
                          "statefulsets", "horizontalpodautoscalers", "jobs", "cronjobs"})


def version(skiff_version: str) -> dict[str, Any]:
    return {"major": KUBE_MAJOR, "minor": KUBE_MINOR,
            "gitVersion": f"v{KUBE_MAJOR}.{KUBE_MINOR}.0-skiff.{skiff_version}", "gitCommit": "", "gitTreeState": "",
            "buildDate": "", "goVersion": f"python{platform.python_version()}", "compiler": "cpython",
            "platform": f"linux/{platform.machine()}"}


def group_versions() -> dict[str, list[str]]:
    """group -> its versions, the core group "" included."""
    out: dict[str, list[str]] = {}
    for info in all_resources():
        versions = out.setdefault(info.group, [])
        if info.version not in versions:
            versions.append(info.version)
    return out


def core_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": group_versions().get("", ["v1"]),
            "serverAddressByClientCIDRs": []}


def groups() -> dict[str, Any]:
    out = []
    for group, versions in sorted(group_versions().items()):
        if not group:
            continue
        listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        out.append({"name": group, "versions": listed, "preferredVersion": listed[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}


def kube_verbs(info: ResourceInfo) -> list[str]:
    verbs = {v for v in info.verbs if v != "apply"}
    if "apply" in info.verbs or "update" in info.verbs:
        verbs.add("patch")
    if "delete" in verbs and "list" in verbs:
        verbs.add("deletecollection")
    return sorted(verbs)


def served(group: str, version: str) -> list[ResourceInfo]:
    return [i for i in all_resources() if i.group == group and i.version == version]


def find(group: str, version: str, plural: str) -> ResourceInfo | None:
    for info in served(group, version):
        if info.plural == plural:
            return info
    return None


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    """The APIResourceList of one group-version; None when nothing is served there."""
    infos = served(group, version)
    if not infos:
        return None
    resources: list[dict[str, Any]] = []
    for info in infos:
        entry: dict[str, Any] = {"name": info.plural, "singularName": info.singular, "namespaced": info.namespaced,
                                 "kind": info.kind, "verbs": kube_verbs(info)}
        if info.short_names:
            entry["shortNames"] = list(info.short_names)
        if info.plural in ALL_CATEGORY:
            entry["categories"] = ["all"]
        resources.append(entry)
        if info.kind in SCALABLE:
            resources.append({"name": f"{info.plural}/scale", "singularName": "", "namespaced": info.namespaced,
                              "group": "autoscaling", "version": "v1", "kind": "Scale",
                              "verbs": ["get", "patch", "update"]})
        if info.kind == "Pod":
            resources.append({"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
                              "verbs": ["get"]})
            for stream in ("exec", "portforward"):
                resources.append({"name": f"pods/{stream}", "singularName": "", "namespaced": True,
                                  "kind": "PodExecOptions" if stream == "exec" else "PodPortForwardOptions",
                                  "verbs": ["create", "get"]})
            resources.append({"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
                              "version": "v1", "kind": "Eviction", "verbs": ["create"]})
        if info.has_status:
            resources.append({"name": f"{info.plural}/status", "singularName": "", "namespaced": info.namespaced,
                              "kind": info.kind, "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}


AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str) -> bool:
    """Whether an Accept header asks for apidiscovery.k8s.io/v2 (kubectl's first choice)."""
    for choice in accept.split(","):
        params = {p.strip() for p in choice.split(";")[1:]}
        if {"g=apidiscovery.k8s.io", "v=v2", "as=APIGroupDiscoveryList"} <= params:
            return True
    return False


def aggregated(core: bool) -> dict[str, Any]:
    """The APIGroupDiscoveryList of /api (core: the core group) or /apis (every other group),
    made of the same APIResourceLists as the plain form."""
    items = []
    for group, versions in sorted(group_versions().items()):
        if bool(group) == core:
            continue
        listed = []
        for version in versions:
            plain = resource_list(group, version) or {"resources": []}
            by_name = {r["name"]: r for r in plain["resources"]}
            resources = []
            for name, r in by_name.items():
                if "/" in name:
                    continue
                entry: dict[str, Any] = {
                    "resource": name, "responseKind": {"group": group, "version": version, "kind": r["kind"]},
                    "scope": "Namespaced" if r["namespaced"] else "Cluster", "singularResource": r["singularName"],
                    "verbs": r["verbs"]}
                for key in ("shortNames", "categories"):
                    if r.get(key):
                        entry[key] = r[key]
                subresources = [{"subresource": sub.partition("/")[2],
                                 "responseKind": {"group": s.get("group", group), "version": s.get("version", version),
                                                  "kind": s["kind"]}, "verbs": s["verbs"]}
                                for sub, s in by_name.items() if sub.startswith(f"{name}/")]
                if subresources:
                    entry["subresources"] = subresources
                resources.append(entry)
            listed.append({"version": version, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group} if group else {}, "versions": listed})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}
