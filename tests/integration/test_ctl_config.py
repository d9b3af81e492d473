"""`ctl config`: several clusters' contexts in one client config, switched by name."""

from __future__ import annotations

from controlplane.client import kubeconfig
from controlplane.pki.ca import ClusterPKI


def test_contexts_switch_between_clusters(ctl, tmp_path, namespace):
    """The ctl fixture's config is the session API server's admin.conf (context
    kubernetes-admin@skiff); add a second cluster whose CA is another one's."""
    path = tmp_path / "ctl-config"
    other = ClusterPKI.load_or_create(tmp_path / "other")
    pair = other.admin()
    data = kubeconfig.merge(kubeconfig.read(path), kubeconfig.build(
        cluster="elsewhere", server="127.0.0.1:1", ca=other.ca_pem, user="ops", cert=pair.cert, key=pair.key,
        namespace="prod"))
    kubeconfig.write(path, data)

    r = ctl("config", "get-contexts", server=False)
    lines = [line.split() for line in r.stdout.splitlines()]
    assert lines[0] == ["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]
    assert ["kubernetes-admin@skiff", "skiff", "kubernetes-admin"] in lines
    assert ["*", "ops@elsewhere", "elsewhere", "ops", "prod"] in lines
    assert ctl("config", "current-context", server=False).stdout == "ops@elsewhere\n"

    r = ctl("get", "ns", server=False)          # the other cluster is not there
    assert r.returncode == 1 and "127.0.0.1:1" in r.stderr
    r = ctl("--context", "kubernetes-admin@skiff", "get", "ns", namespace, server=False)
    assert r.returncode == 0 and namespace in r.stdout, r.stderr

    r = ctl("config", "use-context", "kubernetes-admin@skiff", server=False)
    assert r.stdout == 'Switched to context "kubernetes-admin@skiff".\n'
    r = ctl("get", "ns", namespace, server=False)
    assert r.returncode == 0 and namespace in r.stdout, r.stderr

    r = ctl("config", "use-context", "nope", server=False)
    assert r.returncode == 1 and 'no context exists with the name: "nope"' in r.stderr

    r = ctl("config", "view", "--raw", server=False)
    assert "client-key-data: " in r.stdout and "REDACTED" not in r.stdout


def test_no_credential_is_a_clear_error(ctl, tmp_path, api_server):
    (tmp_path / "ctl-config").write_text(f"server: {api_server.address}\n")
    r = ctl("get", "pods", server=False)
    assert r.returncode == 1
    assert f"no credentials for the API server at {api_server.address}" in r.stderr
    assert "Traceback" not in r.stderr
