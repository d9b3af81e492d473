"""Quantities the kernel cannot take are refused by the API with the field named (issue 15): a memory
limit of 1e27 bytes, a CPU limit of 1e308 cores, a Deployment of 3 billion replicas; a bad CronJob
schedule or time zone names spec.schedule / spec.timeZone."""

from __future__ import annotations

import pytest

from api.errors import ValidationFailed
from api.registry import parse_object


def pod(resources: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "a", "image": "busybox", "resources": resources}]}}


def message(obj: dict) -> str:
    with pytest.raises(ValidationFailed) as exc:
        parse_object(obj)
    return str(exc.value)


def test_memory_and_cpu_beyond_what_a_cgroup_holds_are_refused():
    assert "spec.containers[0].resources.limits[memory]: Invalid value: \"1e27\": must be less than or equal to 8Ei" \
        in message(pod({"limits": {"memory": "1e27"}}))
    assert "spec.containers[0].resources.limits[cpu]: Invalid value: \"1e308\": must be less than or equal to 1000000" \
        in message(pod({"limits": {"cpu": "1e308"}}))
    parse_object(pod({"limits": {"cpu": "64", "memory": "1Ti"}}))


def test_replicas_are_int32():
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                  "spec": {"replicas": 3_000_000_000, "selector": {"matchLabels": {"a": "b"}},
                           "template": {"metadata": {"labels": {"a": "b"}},
                                        "spec": {"containers": [{"name": "a", "image": "busybox"}]}}}}
    assert "spec.replicas: Invalid value: 3000000000: must be less than or equal to 2147483647" in message(deployment)


def cronjob(**spec: object) -> dict:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "hello"},
            "spec": {"schedule": "*/1 * * * *", **spec, "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "a", "image": "busybox"}]}}}}}}


def test_cronjob_schedule_and_time_zone_are_checked():
    parse_object(cronjob(timeZone="Europe/Paris"))
    parse_object(cronjob(schedule="@hourly"))
    assert 'spec.schedule: Invalid value: "61 * * * *"' in message(cronjob(schedule="61 * * * *"))
    assert "spec.schedule" in message(cronjob(schedule="every minute"))
    assert "use timeZone field instead" in message(cronjob(schedule="TZ=UTC * * * * *"))
    assert 'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone' in message(cronjob(timeZone="Mars/Olympus"))
    assert "spec.timeZone" in message(cronjob(timeZone="../../etc/passwd"))
