"""The client config file and command-line resource arguments."""

import pytest

from cli import config
from cli.errors import CliError
from cli.resources import parse_targets


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


def test_save_server_keeps_other_keys(tmp_path):
    path = tmp_path / "sub" / "config"
    config.save_server(path, "127.0.0.1:1")
    path.write_text(path.read_text() + "token: abc\n")
    config.save_server(path, "127.0.0.1:2")
    assert path.read_text() == "server: 127.0.0.1:2\ntoken: abc\n"
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("text, message", [
    ("server: [a\n", "cannot parse client config"),
    ("- a\n", "must be a mapping"),
    ("server: 5\n", "server: must be a non-empty string"),
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
