"""The agent's reading of a pod: its seccomp profile choice and its pod-level limits."""

from __future__ import annotations

import pytest

from agent.containerspec import UserError, pod_memory_limit, pod_resources, seccomp_profile_of

Mi = 1024 * 1024


def pod(containers, init=(), sc=None) -> dict:
    return {"spec": {"containers": list(containers), "initContainers": list(init),
                     **({"securityContext": sc} if sc else {})}}


def c(name="main", memory=None, sc=None) -> dict:
    return {"name": name, **({"resources": {"limits": {"memory": memory}}} if memory else {}),
            **({"securityContext": sc} if sc else {})}


def test_seccomp_defaults_to_runtime_default_and_container_overrides_pod() -> None:
    assert seccomp_profile_of(pod([c()]), c()) == ("RuntimeDefault", "")
    unconfined = {"seccompProfile": {"type": "Unconfined"}}
    assert seccomp_profile_of(pod([c()], sc=unconfined), c()) == ("Unconfined", "")
    local = {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}
    assert seccomp_profile_of(pod([c()], sc=unconfined), c(sc=local)) == ("Localhost", "p.json")
    with pytest.raises(UserError, match="localhostProfile: required"):
        seccomp_profile_of(pod([c()]), c(sc={"seccompProfile": {"type": "Localhost"}}))


def test_pod_memory_limit_is_the_kubelets() -> None:
    assert pod_memory_limit(pod([c("a", "64Mi"), c("b", "32Mi")])) == 96 * Mi
    assert pod_memory_limit(pod([c("a", "64Mi")], init=[c("i", "128Mi")])) == 128 * Mi
    assert pod_memory_limit(pod([c("a", "64Mi"), c("b")])) is None          # one without a limit: none
    assert pod_memory_limit(pod([c("a", "64Mi")], init=[c("i")])) is None


def test_pod_resources_carry_the_pids_limit() -> None:
    resources = pod_resources(pod([c("a", "64Mi")]), max_pids=4096)
    assert resources.pids_limit == 4096 and resources.memory_limit_bytes == 64 * Mi
    assert pod_resources(pod([c()]), max_pids=None).pids_limit is None


def test_agent_flags_for_pids_and_eviction(capsys) -> None:
    from agent.main import parse_args
    config, _ = parse_args(["--pod-max-pids", "128", "--eviction-interval", "2", "--reserved", "pid=500"])
    assert (config.pod_max_pids, config.eviction_interval_seconds, config.reserved["pid"]) == (128, 2.0, "500")
    assert parse_args(["--pod-max-pids", "-1"])[0].pod_max_pids is None
    for argv, message in ((["--pod-max-pids", "0"], "--pod-max-pids 0: must be a positive number or -1"),
                          (["--eviction-interval", "0"], "--eviction-interval 0.0: must be positive"),
                          (["--reserved", "pid=lots"], "--reserved pid=lots: must be a whole number")):
        with pytest.raises(SystemExit) as exit_:
            parse_args(argv)
        assert exit_.value.code == 2
        assert message in capsys.readouterr().err
