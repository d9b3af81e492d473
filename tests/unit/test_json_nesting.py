"""json_too_deep (api/limits.py): the nesting limit the API server applies to every object and
patch it decodes, with its shortcut (few brackets cannot nest deep) and its walk."""

import json

from api.limits import MAX_NESTING, json_too_deep


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_document_nested_past_the_limit_is_too_deep_as_bytes_and_as_text():
    text = _nested(MAX_NESTING + 1)
    assert json_too_deep(text, json.loads(text))
    assert json_too_deep(text.encode(), json.loads(text))


def test_a_document_at_the_limit_is_not_too_deep():
    text = _nested(MAX_NESTING)
    assert not json_too_deep(text.encode(), json.loads(text))


def test_many_brackets_side_by_side_are_walked_and_found_shallow():
    text = json.dumps({"items": [{"a": [1]} for _ in range(500)]})
    assert not json_too_deep(text.encode(), json.loads(text))


def test_brackets_inside_strings_do_not_make_a_flat_object_too_deep():
    text = json.dumps({"data": {"x": "{[" * 300}})
    assert not json_too_deep(text.encode(), json.loads(text))


def test_a_pod_is_settled_by_the_count_alone():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
           "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]}}
    text = json.dumps(pod).encode()
    assert text.count(b"{") + text.count(b"[") <= MAX_NESTING
    assert not json_too_deep(text, pod)
