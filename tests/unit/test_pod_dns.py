"""A pod's DNS settings: dnsPolicy/dnsConfig validation (api/pod.py) and the resolv.conf the agent
writes for each policy (agent/dns/resolvconf.py), as the kubelet would."""

from __future__ import annotations

from typing import Any

import pytest

from api import ValidationFailed, parse_object

from agent.dns.resolvconf import pod_resolv_conf

HOST = "nameserver 127.0.0.53\nnameserver 10.255.255.53\nsearch corp.example\noptions edns0 timeout:2\n"


def pod(ns: str = "shop", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": ns},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}], **spec}}


def resolv(doc: dict[str, Any], *, cluster_dns: str | None = "198.19.1.1", domain: str = "cluster.local") -> str:
    parse_object(doc)                                  # every pod here is a valid one
    return pod_resolv_conf(doc, host_resolv=HOST, cluster_dns=cluster_dns, cluster_domain=domain)


def errors_of(doc: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailed) as err:
        parse_object(doc)
    return [(e.path, e.message) for e in err.value.errors]


def test_cluster_first_is_the_default() -> None:
    assert resolv(pod()) == ("nameserver 198.19.1.1\n"
                             "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
                             "options ndots:5\n")


def test_cluster_domain_is_configurable() -> None:
    assert "search default.svc.corp.internal svc.corp.internal corp.internal" in resolv(pod("default"),
                                                                                        domain="corp.internal")


def test_host_network_pod_gets_the_nodes_file_unless_cluster_first_with_host_net() -> None:
    # The node's loopback resolver is reachable from the node's own network namespace.
    assert resolv(pod(hostNetwork=True)) == ("nameserver 127.0.0.53\nnameserver 10.255.255.53\n"
                                             "search corp.example\noptions edns0 timeout:2\n")
    assert resolv(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")).startswith(
        "nameserver 198.19.1.1\nsearch shop.svc.cluster.local")


def test_default_is_the_nodes_file_without_loopback_servers() -> None:
    assert resolv(pod(dnsPolicy="Default")) == ("nameserver 10.255.255.53\nsearch corp.example\n"
                                                "options edns0 timeout:2\n")


def test_none_takes_dns_config_only() -> None:
    doc = pod(dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.53"], "searches": ["example.org"],
                                           "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]})
    assert resolv(doc) == "nameserver 192.0.2.53\nsearch example.org\noptions ndots:2 rotate\n"


def test_dns_config_is_merged_on_top() -> None:
    doc = pod(dnsConfig={"nameservers": ["192.0.2.53", "198.19.1.1"], "searches": ["a.example", "cluster.local"],
                         "options": [{"name": "ndots", "value": "1"}, {"name": "edns0"}]})
    assert resolv(doc) == ("nameserver 198.19.1.1\nnameserver 192.0.2.53\n"
                           "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example a.example\n"
                           "options ndots:1 edns0\n")


def test_without_cluster_dns_cluster_first_falls_back_to_default() -> None:
    assert resolv(pod(), cluster_dns=None) == ("nameserver 10.255.255.53\nsearch corp.example\n"
                                               "options edns0 timeout:2\n")


def test_at_most_three_nameservers() -> None:
    doc = pod(dnsConfig={"nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3"]})
    assert resolv(doc).count("nameserver") == 3


@pytest.mark.parametrize("spec, expected", [
    ({"dnsPolicy": "None"}, [("spec.dnsConfig", "field required: must provide `dnsConfig` when `dnsPolicy` is None")]),
    ({"dnsPolicy": "None", "dnsConfig": {"searches": ["a.example"]}},
     [("spec.dnsConfig.nameservers",
       "field required: must provide at least one DNS nameserver when `dnsPolicy` is None")]),
    ({"dnsConfig": {"nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]}},
     [("spec.dnsConfig.nameservers", 'Invalid value: ["192.0.2.1","192.0.2.2","192.0.2.3","192.0.2.4"]: '
                                     "must not have more than 3 nameservers")]),
    ({"dnsConfig": {"nameservers": ["dns.example"]}},
     [("spec.dnsConfig.nameservers[0]", 'Invalid value: "dns.example": must be a valid IP address')]),
    ({"dnsConfig": {"searches": ["Bad_Domain"]}}, [("spec.dnsConfig.searches[0]", None)]),
    ({"dnsConfig": {"options": [{"name": ""}]}}, [("spec.dnsConfig.options[0].name", "field required")]),
    ({"dnsPolicy": "Sometimes"}, [("spec.dnsPolicy", None)]),
])
def test_invalid_dns_settings(spec: dict[str, Any], expected: list[tuple[str, str | None]]) -> None:
    found = errors_of(pod(**spec))
    assert [path for path, _ in found] == [path for path, _ in expected]
    for (_, message), (_, wanted) in zip(found, expected):
        if wanted is not None:
            assert message == wanted


def test_search_list_limits() -> None:
    too_many = [f"d{i}.example" for i in range(33)]
    assert [p for p, _ in errors_of(pod(dnsConfig={"searches": too_many}))] == ["spec.dnsConfig.searches"]
    assert parse_object(pod(dnsConfig={"searches": ["example.org."]}))          # a trailing dot is fine
