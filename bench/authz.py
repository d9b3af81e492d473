"""Benchmark of authorization and admission: the CPU each request pays for them.

    .venv/bin/python bench/authz.py            # the figures in docs/PERFORMANCE.md (a few seconds)
    .venv/bin/python bench/authz.py --quick    # fewer rounds: checks the script works

Runs the real AccessControl pieces (controlplane/auth) in this process on a policy the size of a
busy cluster: the default roles plus --namespaces namespaces with --bindings-per-namespace
RoleBindings each (to view/edit/admin and to Roles of their own), and --pods pods bound
to 100 nodes. It times, per decision:

- a system:masters caller (short-circuit: what the scheduler, controllers and admins pay);
- an RBAC user allowed through a RoleBinding, and one refused (every subject looked up);
- a ServiceAccount allowed through a RoleBinding;
- a node getting its own pod's Secret, and another node's pod (the Node authorizer);
- Pod Security on a pod create (baseline);
- rebuilding the RBAC indexes after a role or binding changed (paid once per change).

Times are CPU time of this process (time.process_time), so a busy machine inflates them less.

Compare with the API server's CPU per create in docs/PERFORMANCE.md (bench/api.py).
Results go to bench/results/authz.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any, Callable  # noqa: E402

from bench.common import RESULTS_DIR, machine_info  # noqa: E402
from controlplane.auth import podsecurity  # noqa: E402
from controlplane.auth.authz import Attributes, Chain  # noqa: E402
from controlplane.auth.bootstrap import default_objects  # noqa: E402
from controlplane.auth.identity import MASTERS, NODES, UserInfo  # noqa: E402
from controlplane.auth.node import NodeAuthorizer  # noqa: E402
from controlplane.auth.rbac import KINDS, PrivilegedGroups, RBACAuthorizer  # noqa: E402

RBAC = "rbac.authorization.k8s.io/v1"


@dataclass
class Cache:
    objects: dict[Any, dict[str, Any]] = field(default_factory=dict)
    revision: int = 1


def policy(namespaces: int, per_namespace: int) -> dict[str, Cache]:
    caches = {kind: Cache() for kind in KINDS}
    plural = {"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings"}
    for obj in default_objects():
        caches[plural[obj["kind"]]].objects[obj["metadata"]["name"]] = obj
    for n in range(namespaces):
        ns = f"ns-{n}"
        caches["roles"].objects[(ns, "own")] = {
            "apiVersion": RBAC, "kind": "Role", "metadata": {"name": "own", "namespace": ns},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}
        for b in range(per_namespace):
            ref = ("ClusterRole", ("view", "edit", "admin")[b % 3]) if b % 4 else ("Role", "own")
            subject = ({"kind": "ServiceAccount", "name": f"sa-{b}", "namespace": ns} if b % 2
                       else {"kind": "User", "name": f"user-{n}-{b}"})
            caches["rolebindings"].objects[(ns, f"b-{b}")] = {
                "apiVersion": RBAC, "kind": "RoleBinding", "metadata": {"name": f"b-{b}", "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref[0], "name": ref[1]},
                "subjects": [subject]}
    return caches


def per_call(fn: Callable[[], Any], rounds: int) -> float:
    """Microseconds of this process's CPU per call, best of 3 runs of `rounds` calls (CPU time,
    not wall time: on a shared, busy machine the time spent waiting for a core is not counted)."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(rounds):
            fn()
        best = min(best, (time.process_time() - start) / rounds)
    return best * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="few rounds (a smoke test)")
    p.add_argument("--namespaces", type=int, default=200)
    p.add_argument("--bindings-per-namespace", type=int, default=20)
    p.add_argument("--pods", type=int, default=20_000)
    p.add_argument("--output", type=Path, default=RESULTS_DIR / "authz.json")
    args = p.parse_args()
    rounds = 2_000 if args.quick else 50_000

    caches = policy(args.namespaces, args.bindings_per_namespace)
    rbac = RBACAuthorizer(caches)
    node = NodeAuthorizer()
    for i in range(args.pods):
        node.graph.put({"metadata": {"name": f"p{i}", "namespace": f"ns-{i % args.namespaces}"},
                        "spec": {"nodeName": f"node-{i % 100}", "containers": [{"name": "c", "image": "x"}],
                                 "volumes": [{"name": "s", "secret": {"secretName": f"s{i}"}}]}})
    chain = Chain(PrivilegedGroups(MASTERS), node, rbac)
    admin = UserInfo("admin", (MASTERS, "system:authenticated"))
    user = UserInfo("user-7-2", ("team-a", "team-b", "system:authenticated"))
    sa = UserInfo("system:serviceaccount:ns-7:sa-1", ("system:serviceaccounts", "system:serviceaccounts:ns-7",
                                                      "system:authenticated"))
    n5 = UserInfo("system:node:node-5", (NODES, "system:authenticated"))
    pod = {"metadata": {"name": "web", "namespace": "ns-1"},
           "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80}],
                                    "securityContext": {"runAsUser": 1000}}],
                    "volumes": [{"name": "e", "emptyDir": {}}]}}

    # One case per line, alike in shape by design (the `duplicates` tool pairs them).
    cases = {
        "masters (scheduler, controllers, admin)": lambda: chain.authorize(
            Attributes(admin, "create", "pods", "", "", "ns-1", "")),
        "RBAC user, allowed (RoleBinding to admin)": lambda: chain.authorize(
            Attributes(user, "create", "pods", "", "", "ns-7", "")),
        "RBAC user, refused": lambda: chain.authorize(
            Attributes(user, "create", "deployments", "apps", "", "ns-8", "")),
        "ServiceAccount, allowed (RoleBinding to view)": lambda: chain.authorize(
            Attributes(sa, "list", "pods", "", "", "ns-7", "")),
        "node, its pod's Secret": lambda: chain.authorize(
            Attributes(n5, "get", "secrets", "", "", "ns-5", "s5")),
        "node, another node's pod (refused)": lambda: chain.authorize(
            Attributes(n5, "get", "pods", "", "", "ns-6", "p6")),
        "Pod Security, baseline pod create": lambda: podsecurity.violations(pod, "baseline"),
    }
    assert chain.authorize(Attributes(user, "create", "pods", "", "", "ns-7", ""))[0].value == "allow"
    assert chain.authorize(Attributes(sa, "list", "pods", "", "", "ns-7", ""))[0].value == "allow"
    assert chain.authorize(Attributes(n5, "get", "secrets", "", "", "ns-5", "s5"))[0].value == "allow"
    results = {name: round(per_call(fn, rounds), 2) for name, fn in cases.items()}
    start = time.process_time()
    rebuilds = 5 if args.quick else 20
    for _ in range(rebuilds):
        rbac._rebuild()
    rebuild_ms = (time.process_time() - start) / rebuilds * 1000

    bindings = len(caches["rolebindings"].objects) + len(caches["clusterrolebindings"].objects)
    out = {"machine": machine_info(), "load_average": os.getloadavg(), "bindings": bindings,
           "roles": len(caches["roles"].objects) + len(caches["clusterroles"].objects), "pods": args.pods,
           "microseconds_per_decision": results, "rbac_index_rebuild_ms": round(rebuild_ms, 1)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"policy: {out['roles']} roles, {bindings} bindings; {args.pods} pods on 100 nodes; "
          f"load average {out['load_average'][0]:.2f}")
    for name, us in results.items():
        print(f"  {name:48s} {us:7.2f} µs")
    print(f"  {'RBAC index rebuild after a change':48s} {rebuild_ms:7.1f} ms")


if __name__ == "__main__":
    main()
