"""`ctl auth can-i` against the real API server over TLS, as the administrator (its client certificate)."""

from __future__ import annotations


def test_can_i_yes_no_and_impersonation(ctl, namespace) -> None:
    r = ctl("auth", "can-i", "create", "deployments", "-n", namespace)
    assert (r.returncode, r.stdout) == (0, "yes\n"), r.stderr
    r = ctl("auth", "can-i", "get", "pods/log", "-n", namespace, "--as", "alice")
    assert (r.returncode, r.stdout) == (1, "no\n"), r.stderr
    r = ctl("auth", "can-i", "get", "pods", "web", "-n", namespace, "--as", "system:node:n1",
            "--as-group", "system:nodes")
    assert r.returncode == 1
    assert r.stdout.startswith("no - node \"n1\" can only get pods bound to it"), r.stdout
    r = ctl("auth", "can-i", "list", "secrets", "-A", "--as", "someone", "--as-group", "system:masters", "-q")
    assert (r.returncode, r.stdout) == (0, "")
    r = ctl("auth", "can-i", "list", "gizmos", "--as", "alice")
    assert r.returncode == 1 and "Warning: the server doesn't have a resource type 'gizmos'" in r.stderr


PRIVILEGED_POD = """
apiVersion: v1
kind: Pod
metadata: {name: root-me}
spec:
  hostPID: true
  containers:
    - name: c
      image: busybox:1.36
      securityContext: {privileged: true}
"""


def test_pod_security_refusal_through_ctl(ctl, namespace) -> None:
    r = ctl("apply", "-f", "-", "-n", namespace, input=PRIVILEGED_POD)
    assert r.returncode == 1
    assert r.stderr.startswith('Error from server (Forbidden): error when applying "STDIN": pods "root-me" is '
                               'forbidden: violates PodSecurity "baseline:latest": spec.hostPID: host namespaces '
                               'are not allowed (hostPID=true); spec.containers[0].securityContext.privileged: '
                               'privileged containers are not allowed'), r.stderr
    assert "Traceback" not in r.stderr


def test_get_rbac_objects(ctl) -> None:
    r = ctl("get", "clusterrolebinding", "cluster-admin", "-o", "wide")
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert row.split()[:2] == ["cluster-admin", "ClusterRole/cluster-admin"] and "system:masters" in row
    r = ctl("get", "clusterroles")
    assert r.returncode == 0 and {"view", "edit", "admin", "cluster-admin"} <= {
        line.split()[0] for line in r.stdout.splitlines()[1:]}
