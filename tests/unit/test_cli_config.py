"""The client config file and command-line resource arguments."""

import pytest

from cli import config
from cli.errors import CliError
from cli.resources import parse_targets
from controlplane.client import kubeconfig


def test_config_path_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("SKIFF_CONFIG", raising=False)
    assert config.config_path().name == "config" and config.config_path().parent.name == ".skiff"
    monkeypatch.setenv("SKIFF_CONFIG", str(tmp_path / "env"))
    assert config.config_path() == tmp_path / "env"
    assert config.config_path(str(tmp_path / "flag")) == tmp_path / "flag"


def test_load_defaults_and_values(tmp_path):
    path = tmp_path / "config"
    assert config.load(path) == config.ClientConfig(path=path)
    path.write_text("server: 10.0.0.1:7000\nnamespace: dev\ntoken: kept\n")
    loaded = config.load(path)
    assert (loaded.server, loaded.namespace) == ("10.0.0.1:7000", "dev")


def _one(cluster: str, server: str) -> dict:
    return kubeconfig.build(cluster=cluster, server=server, ca=b"CA-" + cluster.encode(), user=f"admin-{cluster}",
                            cert=b"CERT", key=b"KEY", namespace="dev" if cluster == "b" else None)


def test_add_cluster_keeps_other_clusters_and_keys(tmp_path):
    path = tmp_path / "sub" / "config"
    path.parent.mkdir()
    path.write_text("server: 127.0.0.1:9\nfuture-key: kept\n")
    config.add_cluster(path, _one("a", "127.0.0.1:1"))
    config.add_cluster(path, _one("b", "127.0.0.1:2"))
    assert path.stat().st_mode & 0o777 == 0o600
    data = config.read_raw(path)
    assert data["future-key"] == "kept" and "server" not in data
    assert kubeconfig.context_names(data) == ["admin-a@a", "admin-b@b"]
    loaded = config.load(path)
    assert (loaded.server, loaded.namespace, loaded.context) == ("127.0.0.1:2", "dev", "admin-b@b")
    assert loaded.credentials.ca == b"CA-b" and loaded.credentials.cert == b"CERT"
    assert config.load(path, context="admin-a@a").server == "127.0.0.1:1"
    config.use_context(path, "admin-a@a")
    assert config.load(path).credentials.ca == b"CA-a"
    with pytest.raises(CliError, match='no context exists with the name: "nope"'):
        config.use_context(path, "nope")
    shown = config.redacted(data)
    assert shown["users"][0]["user"] == {"client-certificate-data": "REDACTED", "client-key-data": "REDACTED"}
    assert shown["clusters"][0]["cluster"]["certificate-authority-data"] == "DATA+OMITTED"


@pytest.mark.parametrize("text, message", [
    ("server: [a\n", "cannot parse client config"),
    ("- a\n", "must be a mapping"),
    ("server: 5\n", "server: must be a non-empty string"),
    ("current-context: x\ncontexts: []\n", "context 'x' not found"),
    ("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: h:1}}]\n",
     r"clusters\[c\].cluster: certificate-authority\(-data\) is required"),
    ("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
     "clusters: [{name: c, cluster: {server: h:1, certificate-authority-data: '!!'}}]\n",
     r"clusters\[c\].cluster.certificate-authority-data: not valid base64"),
])
def test_bad_config(tmp_path, text, message):
    path = tmp_path / "config"
    path.write_text(text)
    with pytest.raises(CliError, match=message):
        config.load(path)


def test_resource_arguments():
    [t] = parse_targets(["po"])
    assert t.info.kind == "Pod" and t.names == []
    targets = parse_targets(["po,deploy,svc", "web"])
    assert [(t.info.kind, t.names) for t in targets] == [("Pod", ["web"]), ("Deployment", ["web"]),
                                                        ("Service", ["web"])]
    targets = parse_targets(["pod/a", "deployment.apps/b", "pod/c"])
    assert [(t.info.kind, t.names) for t in targets] == [("Pod", ["a", "c"]), ("Deployment", ["b"])]
    for short, kind in {"po": "Pod", "deploy": "Deployment", "rs": "ReplicaSet", "ds": "DaemonSet",
                        "no": "Node", "ns": "Namespace", "cm": "ConfigMap", "svc": "Service", "ev": "Event",
                        "job": "Job", "secret": "Secret"}.items():
        assert parse_targets([short])[0].info.kind == kind
    with pytest.raises(CliError, match='resource type "gizmos"'):
        parse_targets(["gizmos"])
    with pytest.raises(CliError, match="no need to specify a resource type"):
        parse_targets(["pods", "pod/a"])
    with pytest.raises(CliError, match="you must specify the type of resource"):
        parse_targets([])
