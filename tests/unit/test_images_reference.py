"""Image references are normalised as Docker does; pull policy defaults as Kubernetes does."""

import pytest

from agent.images import InvalidReference, default_pull_policy, normalize_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("ref, full", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("team/app", "docker.io/team/app:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
    ("host:5000/team/app:v2", "host:5000/team/app:v2"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    ("127.0.0.1:5000/a/b/c:t_1.2-x", "127.0.0.1:5000/a/b/c:t_1.2-x"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
    (f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox:1.36@{DIGEST}"),
    ("[::1]:5000/app:1", "[::1]:5000/app:1"),
])
def test_normalised_like_docker(ref: str, full: str) -> None:
    assert str(normalize_reference(ref)) == full


def test_parts() -> None:
    ref = normalize_reference("host:5000/team/app:v2")
    assert (ref.domain, ref.repository, ref.tag, ref.digest) == ("host:5000", "team/app", "v2", None)
    assert ref.name == "host:5000/team/app"
    pinned = normalize_reference(f"busybox@{DIGEST}")
    assert pinned.tag is None and pinned.digest == DIGEST


@pytest.mark.parametrize("ref, problem", [
    ("", "non-empty"),
    ("Busybox", "lowercase"),
    ("busybox:", "bad tag"),
    ("busybox@sha256:1234", "digest"),
    ("busybox@md5:" + "a" * 32, "digest"),
    ("a//b", "path component"),
    ("-bad/name", "path component"),
    (" busybox", "without spaces"),
    ("host:5000/", "missing repository"),
])
def test_invalid(ref: str, problem: str) -> None:
    with pytest.raises(InvalidReference, match=problem):
        normalize_reference(ref)


@pytest.mark.parametrize("image, policy", [
    ("busybox", "Always"),
    ("busybox:latest", "Always"),
    ("busybox:1.36", "IfNotPresent"),
    (f"busybox@{DIGEST}", "IfNotPresent"),
    (f"busybox:latest@{DIGEST}", "Always"),       # Kubernetes looks at the tag only (SetDefaults_Container)
    ("host:5000/app", "Always"),
])
def test_default_pull_policy(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy
