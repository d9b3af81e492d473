"""The bad inputs of issue 15, each refused with one clear line and nothing written.

A 10,000-level nested manifest, a 50 MB file, a `..` subPath, a relative mountPath, an
image name no registry could serve; and on the server, a deeply nested object sent past
ctl (a RecursionError logged as INTERNAL before) and a Deployment whose selector changes.
"""

from __future__ import annotations

import json
import time

import pytest

from controlplane.client import Invalid

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: web
    image: %(image)s
    volumeMounts: [{name: data, mountPath: "%(mount)s", subPath: "%(sub)s"}]
"""


def refused(ctl, namespace, manifest: str, message: str) -> None:
    r = ctl("apply", "-f", "-", "-n", namespace, input=manifest)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert message in r.stderr, r.stderr
    assert ctl("get", "pods,cm", "-n", namespace, "-o", "name").stdout == ""


@pytest.mark.parametrize("image, mount, sub, message", [
    ("busybox:1.36", "/data", "../../..",
     'spec.containers[0].volumeMounts[0].subPath: Invalid value: "../../..": must not contain \'..\''),
    ("busybox:1.36", "/data", "/etc", 'subPath: Invalid value: "/etc": must be a relative path'),
    ("busybox:1.36", "data", "x", 'spec.containers[0].volumeMounts[0].mountPath: Invalid value: "data": '
                                   'must be an absolute path'),
    ("busybox:1.36", "/data/../etc", "x", "mountPath: Invalid value: \"/data/../etc\": must not contain '..'"),
    ("Busybox:1.36", "/data", "x", 'spec.containers[0].image: Invalid value: "Busybox:1.36": repository name must '
                                   'be lowercase'),
    ("registry.local/../busybox", "/data", "x", 'spec.containers[0].image: Invalid value: '
                                                '"registry.local/../busybox": bad path component'),
])
def test_bad_pod_fields(ctl, namespace, image, mount, sub, message):
    refused(ctl, namespace, POD % {"image": image, "mount": mount, "sub": sub}, message)


def test_deeply_nested_manifest(ctl, namespace):
    deep = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: " + "[" * 10000 + "]" * 10000 + "\n"
    refused(ctl, namespace, deep, "maps and lists nest more than 100 levels deep")
    refused(ctl, namespace, "{" * 10000, "maps and lists nest more than 100 levels deep")


def test_huge_file_refused_before_parsing(ctl, namespace, tmp_path):
    big = tmp_path / "big.yaml"
    with big.open("w") as f:
        f.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n")
        line = "  k%d: " + "x" * 1000 + "\n"
        for i in range(50_000):
            f.write(line % i)
    started = time.monotonic()
    r = ctl("apply", "-f", str(big), "-n", namespace)
    elapsed = time.monotonic() - started
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{big} is " in r.stderr and "larger than ctl reads from one source" in r.stderr, r.stderr
    assert elapsed < 20, f"took {elapsed:.1f}s: the file was parsed before its size was checked"


async def test_server_refuses_deep_nesting_by_name(client, namespace):
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "deep", "namespace": namespace}}
    text = json.dumps(obj)[:-1] + ', "data": ' + "[" * 10000 + "]" * 10000 + "}"
    with pytest.raises(Invalid, match="nests maps and lists more than 100 levels deep"):
        await client.create(json.loads(json.dumps(obj)) | {"data": _nest(150)})
    with pytest.raises(Invalid, match="nests maps and lists more than 100 levels deep"):
        from protos import skiff_pb2 as pb
        await client._call(client.stub.Create, pb.CreateRequest(object=text.encode()))


def _nest(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value
