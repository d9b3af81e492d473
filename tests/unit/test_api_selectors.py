"""Label selectors (strings and LabelSelector documents) and field selectors."""

import pytest

from api.errors import ValidationFailed
from api.meta import LabelSelector
from api.selectors import (EVERYTHING, FieldSelector, field_value, parse_field_selector, parse_label_selector,
                           requirement_from_expression, selector_from_spec)

WEB = {"app": "web", "tier": "frontend", "env": "prod"}
DB = {"app": "db", "tier": "backend", "env": "dev", "canary": "true"}
NONE: dict[str, str] = {}


@pytest.mark.parametrize("text, web, db, none", [
    ("", True, True, True),
    ("app=web", True, False, False),
    ("app==web", True, False, False),
    ("app = web", True, False, False),
    ("app!=web", False, True, True),           # != also matches objects without the key
    ("env in (prod,staging)", True, False, False),
    ("env in (prod, dev)", True, True, False),
    ("env notin (dev)", True, False, True),    # notin matches a missing key, as in kubectl
    ("canary", False, True, False),
    ("!canary", True, False, True),
    ("app=web,tier=frontend", True, False, False),
    ("app=web,canary", False, False, False),
    ("env in (prod,dev),!canary", True, False, False),
    ("app=", False, False, False),             # empty value: key must exist with value ""
])
def test_label_selector_strings(text, web, db, none):
    selector = parse_label_selector(text)
    assert (selector.matches(WEB), selector.matches(DB), selector.matches(NONE)) == (web, db, none)


def test_empty_selector_matches_everything_and_prints_back():
    assert parse_label_selector(None) is EVERYTHING and parse_label_selector("  ").empty
    assert str(parse_label_selector("app=web,env in (a,b),!x,y")) == "app=web,env in (a,b),!x,y"


@pytest.mark.parametrize("text, message", [
    ("app=web,,tier=x", "empty requirement"),
    ("env in ()", "values set can't be empty"),
    ("a b c", "unable to parse requirement"),
    ("-bad-=x", "invalid label key"),
    ("app=-bad-", "invalid label value"),
    ("app=" + "x" * 64, "63 characters or less"),
])
def test_bad_label_selectors(text, message):
    with pytest.raises(ValidationFailed, match=message) as err:
        parse_label_selector(text, path="labelSelector")
    assert err.value.errors[0].path == "labelSelector"


@pytest.mark.parametrize("spec, web, db", [
    ({"matchLabels": {"app": "web"}}, True, False),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]}, True, True),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]}, True, False),
    ({"matchExpressions": [{"key": "canary", "operator": "Exists"}]}, False, True),
    ({"matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]}, True, False),
    ({"matchLabels": {"tier": "backend"}, "matchExpressions": [{"key": "canary", "operator": "Exists"}]}, False, True),
    ({}, True, True),
])
def test_selector_documents(spec, web, db):
    selector = selector_from_spec(spec)
    assert (selector.matches(WEB), selector.matches(DB)) == (web, db)
    assert LabelSelector.model_validate(spec).to_selector().matches(WEB) == web


@pytest.mark.parametrize("expr, path, message", [
    ({"key": "a", "operator": "Foo"}, "e.operator", 'Unsupported value: "Foo": supported values: "In", "NotIn"'),
    ({"key": "a", "operator": "In"}, "e.values", "must be specified when `operator` is 'In' or 'NotIn'"),
    ({"key": "a", "operator": "Exists", "values": ["x"]}, "e.values", "may not be specified"),
    ({"key": "a", "operator": "Gt", "values": ["1", "2"]}, "e.values", "single value"),
    ({"key": "a", "operator": "Lt", "values": ["x"]}, "e.values[0]", "must be an integer"),
    ({"key": "bad key", "operator": "Exists"}, "e.key", "invalid label key"),
])
def test_bad_expressions(expr, path, message):
    with pytest.raises(ValidationFailed) as err:
        requirement_from_expression(expr, path="e", operators=("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"))
    assert err.value.errors[0].path == path
    assert message in err.value.errors[0].message


@pytest.mark.parametrize("op, value, labels, want", [
    ("Gt", "3", {"cores": "4"}, True),
    ("Gt", "4", {"cores": "4"}, False),
    ("Lt", "5", {"cores": "4"}, True),
    ("Lt", "5", {"cores": "many"}, False),
    ("Gt", "1", {}, False),
])
def test_gt_and_lt(op, value, labels, want):
    req = requirement_from_expression({"key": "cores", "operator": op, "values": [value]}, path="e",
                                      operators=("Gt", "Lt"))
    assert req.matches(labels) is want


def test_label_selector_model_reports_exact_paths():
    from pydantic import ValidationError

    from api.registry import pydantic_errors
    with pytest.raises(ValidationError) as err:
        LabelSelector.model_validate({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]},
                                                           {"key": "b", "operator": "Is"}]})
    [error] = pydantic_errors(err.value)
    assert error.path == "matchExpressions[1].operator"
    assert error.message.startswith('Unsupported value: "Is"')


# ---- field selectors ----

POD = {"metadata": {"name": "p1", "namespace": "default"}, "spec": {"nodeName": "n1", "hostNetwork": True},
       "status": {"phase": "Running"}}


@pytest.mark.parametrize("text, want", [
    ("spec.nodeName=n1", True),
    ("spec.nodeName==n1", True),
    ("spec.nodeName!=n1", False),
    ("spec.nodeName=n2", False),
    ("spec.nodeName=,status.phase=Running", False),
    ("status.phase!=Failed,metadata.name=p1", True),
    ("spec.hostNetwork=true", True),
    ("spec.missing=", True),     # an absent field compares as ""
    ("", True),
])
def test_field_selectors(text, want):
    assert parse_field_selector(text).matches(POD) is want


def test_field_selector_pins_a_value_for_storage():
    selector = parse_field_selector("spec.nodeName=n1,status.phase!=Failed")
    assert selector.value_for("spec.nodeName") == "n1"
    assert selector.value_for("status.phase") is None
    assert FieldSelector().empty


@pytest.mark.parametrize("text", ["spec.nodeName", "=x", "spec.nodeName<3"])
def test_bad_field_selectors(text):
    with pytest.raises(ValidationFailed, match="invalid selector") as err:
        parse_field_selector(text)
    assert err.value.errors[0].path == "fieldSelector"


def test_field_value():
    assert field_value(POD, "metadata.namespace") == "default"
    assert field_value(POD, "spec.nodeName.more") == ""
