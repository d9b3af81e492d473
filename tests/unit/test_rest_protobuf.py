"""controlplane/rest/protobuf.py: Kubernetes' protobuf bodies read by field number."""

from __future__ import annotations

import pytest

from controlplane.rest import protobuf


def _varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version.encode()) + _field(2, kind.encode())
    return protobuf.MAGIC + _field(1, type_meta) + _field(2, raw)


def test_a_namespace_with_labels_and_go_zero_values() -> None:
    label = _field(1, b"team") + _field(2, b"a")
    meta = (_field(1, b"x") + _field(2, b"") + _field(4, b"") + _field(7, 0) + _field(8, _field(1, 0))
            + _field(11, label))
    body = _envelope("v1", "Namespace", _field(1, meta) + _field(2, b""))
    assert protobuf.decode_object(body) == {"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": "x", "labels": {"team": "a"}}, "spec": {}}


def test_a_secret_s_bytes_are_base64_and_a_deployment_s_containers_repeat() -> None:
    secret = _envelope("v1", "Secret", _field(1, _field(1, b"s")) + _field(2, _field(1, b"pw") + _field(2, b"\x00hi"))
                       + _field(3, b"Opaque"))
    assert protobuf.decode_object(secret)["data"] == {"pw": "AGhp"}
    containers = b"".join(_field(2, _field(1, n) + _field(2, b"busybox")) for n in (b"a", b"b"))
    spec = _field(1, 2) + _field(3, _field(2, containers))
    deployment = protobuf.decode_object(_envelope("apps/v1", "Deployment", _field(1, _field(1, b"d")) + _field(2, spec)))
    assert deployment["spec"]["replicas"] == 2
    assert [c["name"] for c in deployment["spec"]["template"]["spec"]["containers"]] == ["a", "b"]


def test_an_unread_field_or_kind_is_refused_by_name() -> None:
    with pytest.raises(protobuf.Unreadable, match="field 99 of Namespace.metadata"):
        protobuf.decode_object(_envelope("v1", "Namespace", _field(1, _field(99, b"set"))))
    with pytest.raises(protobuf.Unreadable, match="not Role"):
        protobuf.decode_object(_envelope("rbac.authorization.k8s.io/v1", "Role", b""))
    with pytest.raises(protobuf.Unreadable, match="envelope"):
        protobuf.decode_object(b'{"kind": "Namespace"}')


def test_an_eviction_with_its_delete_options() -> None:
    options = _field(1, 30) + _field(2, _field(2, b"42"))
    body = _envelope("policy/v1", "Eviction", _field(1, _field(1, b"web-1") + _field(3, b"default")) + _field(2, options))
    assert protobuf.decode_object(body) == {
        "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-1", "namespace": "default"},
        "deleteOptions": {"gracePeriodSeconds": 30, "preconditions": {"resourceVersion": "42"}}}
