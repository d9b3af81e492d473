"""agent/envs.py: command line and environment with Kubernetes' rules (table-driven)."""

from __future__ import annotations

import base64
import os

import pytest

from agent.envs import DEFAULT_PATH, ConfigError, command_line, default_path_env, expand, pod_hostname, \
    resolve_env, service_env


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CONFIGMAPS = {
    "app": {"metadata": {"name": "app"}, "data": {"MODE": "prod", "LEVEL": "debug", "bad=key": "x"}},
}
SECRETS = {
    "creds": {"metadata": {"name": "creds"}, "data": {"user": b64("admin"), "pass": b64("s3cr=t\n")}},
}
NODE = {"metadata": {"name": "n1"},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi"},
                   "addresses": [{"type": "InternalIP", "address": "198.18.0.1"}]}}


def make_pod(container: dict, **spec) -> dict:
    return {
        "metadata": {"name": "web-1", "namespace": "default", "uid": "u-123",
                     "labels": {"app": "web", "tier": "front"}, "annotations": {"note": "hi"}},
        "spec": {"nodeName": "n1", "serviceAccountName": "default", "containers": [container], **spec},
        "status": {"hostIP": "198.18.0.1", "podIP": "198.18.1.5", "podIPs": [{"ip": "198.18.1.5"},
                                                                              {"ip": "fd00::5"}]},
    }


def env_of(container: dict, image_env: list[str] | None = None, node: dict | None = NODE, **spec) -> dict:
    pod = make_pod(container, **spec)
    return resolve_env(pod, container, image_env=image_env or [], get_configmap=CONFIGMAPS.get,
                       get_secret=SECRETS.get, node=node)


# ---- $(VAR) expansion ----

@pytest.mark.parametrize("text, expected", [
    ("$(A)", "a"),
    ("x-$(A)-$(B)", "x-a-b"),
    ("$(MISSING)", "$(MISSING)"),
    ("$$(A)", "$(A)"),
    ("$$$(A)", "$a"),
    ("$$", "$"),
    ("$A", "$A"),
    ("cost $5", "cost $5"),
    ("end$", "end$"),
    ("$(A", "$(A"),
    ("$()", "$()"),
    ("$(A)$(A)", "aa"),
])
def test_expand(text: str, expected: str) -> None:
    assert expand(text, {"A": "a", "B": "b"}) == expected


# ---- command line ----

@pytest.mark.parametrize("container, entrypoint, cmd, expected", [
    ({}, ["/entry"], ["serve", "--port=80"], ["/entry", "serve", "--port=80"]),
    ({}, None, ["sh"], ["sh"]),
    ({"args": ["x", "y"]}, ["/entry"], ["serve"], ["/entry", "x", "y"]),
    ({"command": ["/bin/app"]}, ["/entry"], ["serve"], ["/bin/app"]),          # CMD dropped too
    ({"command": ["/bin/app"], "args": ["-v"]}, ["/entry"], ["serve"], ["/bin/app", "-v"]),
    ({"command": ["echo", "$(GREETING)", "$$(GREETING)", "$(NOPE)"]}, None, None,
     ["echo", "hello", "$(GREETING)", "$(NOPE)"]),
    ({"args": ["--mode=$(MODE)"]}, ["/entry"], None, ["/entry", "--mode=prod"]),
])
def test_command_line(container: dict, entrypoint, cmd, expected: list[str]) -> None:
    assert command_line(container, entrypoint, cmd, {"GREETING": "hello", "MODE": "prod"}) == expected


def test_command_line_empty_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no command specified"):
        command_line({}, None, None, {})
    with pytest.raises(ConfigError) as info:
        command_line({"args": []}, [], [], {})
    assert info.value.reason == "CreateContainerConfigError"


# ---- defaults ----

def test_default_path_env() -> None:
    assert default_path_env([], hostname="web-1") == {"PATH": DEFAULT_PATH, "HOSTNAME": "web-1"}
    env = default_path_env(["PATH=/opt/bin", "LANG=C.UTF-8", "EMPTY="], hostname="h")
    assert env == {"PATH": "/opt/bin", "HOSTNAME": "h", "LANG": "C.UTF-8", "EMPTY": ""}


def test_pod_hostname() -> None:
    assert pod_hostname({"metadata": {"name": "web-1"}, "spec": {}}) == "web-1"
    assert pod_hostname({"metadata": {"name": "web-1"}, "spec": {"hostname": "db"}}) == "db"
    long = "a" * 62 + "-b" + "c" * 10
    assert pod_hostname({"metadata": {"name": long}, "spec": {}}) == "a" * 62
    assert pod_hostname({"metadata": {"name": "x"}, "spec": {"hostNetwork": True}}) == os.uname().nodename


# ---- resolve_env ----

def test_order_and_overrides() -> None:
    env = env_of({"name": "c", "envFrom": [{"configMapRef": {"name": "app"}}],
                  "env": [{"name": "MODE", "value": "dev"}, {"name": "LANG", "value": "de_DE"}]},
                 image_env=["PATH=/opt/bin", "LANG=C"])
    assert list(env) == ["PATH", "HOSTNAME", "LANG", "MODE", "LEVEL"]
    assert env == {"PATH": "/opt/bin", "HOSTNAME": "web-1", "LANG": "de_DE", "MODE": "dev", "LEVEL": "debug"}


@pytest.mark.parametrize("env, expected", [
    ([{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)-2"}], {"A": "1", "B": "1-2"}),
    ([{"name": "B", "value": "$(A)"}, {"name": "A", "value": "1"}], {"A": "1", "B": "$(A)"}),   # only earlier
    ([{"name": "B", "value": "$$(A)"}, {"name": "A", "value": "1"}], {"A": "1", "B": "$(A)"}),
    ([{"name": "P", "value": "$(PATH):/x"}], {"P": "$(PATH):/x"}),       # image env is not visible (k8s)
    ([{"name": "M", "value": "m=$(MODE)"}], {"M": "m=prod"}),             # envFrom is
    ([{"name": "E"}], {"E": ""}),
])
def test_env_values_and_expansion(env: list[dict], expected: dict) -> None:
    result = env_of({"name": "c", "env": env, "envFrom": [{"configMapRef": {"name": "app"}}]})
    for key, value in expected.items():
        assert result[key] == value


def test_env_from_prefix_secret_and_invalid_keys() -> None:
    env = env_of({"name": "c", "envFrom": [{"prefix": "CM_", "configMapRef": {"name": "app"}},
                                           {"prefix": "S_", "secretRef": {"name": "creds"}}]})
    assert env["CM_MODE"] == "prod" and env["CM_LEVEL"] == "debug"
    assert "CM_bad=key" not in env
    assert env["S_user"] == "admin" and env["S_pass"] == "s3cr=t\n"


@pytest.mark.parametrize("source, expected", [
    ({"configMapKeyRef": {"name": "app", "key": "MODE"}}, "prod"),
    ({"secretKeyRef": {"name": "creds", "key": "user"}}, "admin"),
    ({"fieldRef": {"fieldPath": "metadata.name"}}, "web-1"),
    ({"fieldRef": {"fieldPath": "metadata.namespace"}}, "default"),
    ({"fieldRef": {"fieldPath": "metadata.uid"}}, "u-123"),
    ({"fieldRef": {"fieldPath": "metadata.labels['app']"}}, "web"),
    ({"fieldRef": {"fieldPath": "metadata.labels['missing']"}}, ""),
    ({"fieldRef": {"fieldPath": "metadata.annotations['note']"}}, "hi"),
    ({"fieldRef": {"fieldPath": "spec.nodeName"}}, "n1"),
    ({"fieldRef": {"fieldPath": "spec.serviceAccountName"}}, "default"),
    ({"fieldRef": {"fieldPath": "status.hostIP"}}, "198.18.0.1"),
    ({"fieldRef": {"fieldPath": "status.podIP"}}, "198.18.1.5"),
    ({"fieldRef": {"fieldPath": "status.podIPs"}}, "198.18.1.5,fd00::5"),
    ({"resourceFieldRef": {"resource": "limits.cpu"}}, "1"),                     # 250m rounds up
    ({"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}, "250"),
    ({"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}, "100"),
    ({"resourceFieldRef": {"resource": "limits.memory"}}, str(64 * 2**20)),
    ({"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}, "64"),
    ({"resourceFieldRef": {"resource": "requests.memory", "divisor": "1M"}}, "34"),   # 32Mi = 33.5M -> 34
])
def test_value_from(source: dict, expected: str) -> None:
    container = {"name": "c", "env": [{"name": "V", "valueFrom": source}],
                 "resources": {"limits": {"cpu": "250m", "memory": "64Mi"},
                               "requests": {"cpu": "100m", "memory": "32Mi"}}}
    assert env_of(container)["V"] == expected


def test_resource_limits_default_to_node_allocatable() -> None:
    container = {"name": "c", "env": [
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Gi"}}},
        {"name": "REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}},
        {"name": "SIDE", "valueFrom": {"resourceFieldRef": {"containerName": "side", "resource": "limits.cpu",
                                                            "divisor": "1m"}}}]}
    side = {"name": "side", "resources": {"limits": {"cpu": "1500m"}}}
    pod = make_pod(container)
    pod["spec"]["containers"].append(side)
    env = resolve_env(pod, container, image_env=[], get_configmap=CONFIGMAPS.get, get_secret=SECRETS.get,
                      node=NODE)
    assert (env["CPU"], env["MEM"], env["REQ"], env["SIDE"]) == ("4", "8", "0", "1500")
    # Without a Node object: this machine's capacity.
    env = env_of({"name": "c", "env": container["env"][:1]}, node=None)
    assert env["CPU"] == str(os.cpu_count())


@pytest.mark.parametrize("source", [
    {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}},
    {"configMapKeyRef": {"name": "app", "key": "nope", "optional": True}},
    {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}},
    {"secretKeyRef": {"name": "creds", "key": "nope", "optional": True}},
])
def test_optional_refs_are_skipped(source: dict) -> None:
    env = env_of({"name": "c", "env": [{"name": "V", "value": "keep"}, {"name": "V", "valueFrom": source}],
                  "envFrom": [{"configMapRef": {"name": "gone", "optional": True}},
                              {"secretRef": {"name": "gone", "optional": True}}]})
    assert env["V"] == "keep"


@pytest.mark.parametrize("container, message", [
    ({"envFrom": [{"configMapRef": {"name": "x"}}]}, 'configmap "x" not found'),
    ({"envFrom": [{"secretRef": {"name": "s"}}]}, 'secret "s" not found'),
    ({"env": [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}}]},
     'configmap "x" not found'),
    ({"env": [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "k"}}}]},
     "couldn't find key k in ConfigMap default/app"),
    ({"env": [{"name": "V", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
     'secret "s" not found'),
    ({"env": [{"name": "V", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]},
     "couldn't find key k in Secret default/creds"),
    ({"env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}}]},
     "unsupported fieldPath: spec.nope"),
    ({"env": [{"name": "V", "valueFrom": {"resourceFieldRef": {"containerName": "zz",
                                                               "resource": "limits.cpu"}}}]},
     "container 'zz' not found"),
])
def test_errors_have_kubernetes_messages(container: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        env_of({"name": "c", **container})
    assert str(info.value) == message or message in str(info.value)
    assert info.value.reason == "CreateContainerConfigError"


# ---- Service variables ----

def _service(name: str, ip: str, ports: list[dict], namespace: str = "default") -> dict:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"clusterIP": ip, "ports": ports}}


SERVICES = [
    _service("kubernetes", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}]),
    _service("redis-leader", "10.96.0.20", [{"port": 6379}]),
    _service("web", "10.96.0.30", [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}],
             namespace="shop"),
    _service("headless", "None", [{"port": 80}], namespace="shop"),
    {"metadata": {"name": "ext", "namespace": "shop"}, "spec": {"type": "ExternalName", "externalName": "x.y"}},
]


def test_service_variables_as_kubernetes_sets_them() -> None:
    pod = {"metadata": {"name": "p", "namespace": "shop"}, "spec": {"containers": []}}
    env = service_env(pod, SERVICES)
    assert env == {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443", "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443", "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443", "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
        "WEB_SERVICE_HOST": "10.96.0.30", "WEB_SERVICE_PORT": "80", "WEB_SERVICE_PORT_HTTP": "80",
        "WEB_SERVICE_PORT_DNS": "53", "WEB_PORT": "tcp://10.96.0.30:80",
        "WEB_PORT_80_TCP": "tcp://10.96.0.30:80", "WEB_PORT_80_TCP_PROTO": "tcp", "WEB_PORT_80_TCP_PORT": "80",
        "WEB_PORT_80_TCP_ADDR": "10.96.0.30",
        "WEB_PORT_53_UDP": "udp://10.96.0.30:53", "WEB_PORT_53_UDP_PROTO": "udp", "WEB_PORT_53_UDP_PORT": "53",
        "WEB_PORT_53_UDP_ADDR": "10.96.0.30"}     # not redis-leader (other namespace), not headless/ExternalName


def test_enable_service_links_false_keeps_only_kubernetes() -> None:
    pod = {"metadata": {"name": "p", "namespace": "default"}, "spec": {"enableServiceLinks": False}}
    env = service_env(pod, SERVICES)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert not any(k.startswith("REDIS") for k in env)
    pod["spec"]["enableServiceLinks"] = True
    assert service_env(pod, SERVICES)["REDIS_LEADER_SERVICE_HOST"] == "10.96.0.20"


def test_service_variables_are_under_the_pods_own_and_visible_to_expansion() -> None:
    pod = make_pod({"name": "c"})
    container = {"name": "c", "env": [{"name": "URL", "value": "http://$(KUBERNETES_SERVICE_HOST):1"},
                                      {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"}]}
    env = resolve_env(pod, container, image_env=["KUBERNETES_PORT=image"], get_configmap=CONFIGMAPS.get,
                      get_secret=SECRETS.get, services=SERVICES)
    assert env["URL"] == "http://10.96.0.1:1"
    assert env["KUBERNETES_SERVICE_PORT"] == "6443"          # the pod's own value wins
    assert env["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"   # over the image's
