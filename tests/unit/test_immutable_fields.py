"""Kubernetes' immutable workload fields (controlplane/apiserver/strategy.py ImmutableSpecFields)."""

import pytest

from api.errors import ValidationFailed
from controlplane.apiserver.strategy import DEFAULT, STRATEGIES


def strategy_for(kind: str):
    return STRATEGIES.get(kind, DEFAULT)


def obj(kind: str, **spec) -> dict:
    return {"kind": kind, "metadata": {"name": "web"}, "spec": spec}


SELECTOR = {"matchLabels": {"app": "web"}}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "DaemonSet", "Job"])
def test_selector_change_is_refused_with_the_field_named(kind):
    old = obj(kind, selector=SELECTOR, template=TEMPLATE)
    new = obj(kind, selector={"matchLabels": {"app": "web2"}}, template=TEMPLATE)
    with pytest.raises(ValidationFailed) as info:
        strategy_for(kind).validate_update(old, new)
    assert str(info.value).startswith('spec.selector: Invalid value: ') and "field is immutable" in str(info.value)
    strategy_for(kind).validate_update(old, obj(kind, selector=SELECTOR, template=TEMPLATE, replicas=3))


def test_job_template_is_immutable_once_its_selector_is_set():
    changed = {**TEMPLATE, "spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}}
    with pytest.raises(ValidationFailed, match=r"spec.template: Invalid value: .*field is immutable"):
        strategy_for("Job").validate_update(obj("Job", selector=SELECTOR, template=TEMPLATE),
                                            obj("Job", selector=SELECTOR, template=changed))
    # the Job controller's defaulting: selector and template labels set once, from the uid
    strategy_for("Job").validate_update(obj("Job", template=TEMPLATE), obj("Job", selector=SELECTOR, template=changed))
    # a Deployment's template changes freely (that is a rollout)
    strategy_for("Deployment").validate_update(obj("Deployment", selector=SELECTOR, template=TEMPLATE),
                                               obj("Deployment", selector=SELECTOR, template=changed))
