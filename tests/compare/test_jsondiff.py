"""Structural JSON comparison: paths, fields, ignore patterns."""

from __future__ import annotations

import pytest

from traffic_duplicator.compare.jsondiff import (
    MISSING,
    JsonPattern,
    diff,
    field_path,
    render_path,
)


def paths(a, b, ignore=()):
    return [
        render_path(path) for path, _, _ in diff(a, b, tuple(JsonPattern.parse(p) for p in ignore))
    ]


def test_identical_documents_have_no_differences_and_key_order_does_not_matter():
    assert diff({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}) == []


def test_changed_added_and_removed_fields_are_reported_by_path():
    found = diff({"user": {"name": "ann", "age": 3}}, {"user": {"name": "bob", "email": "b@x"}})
    assert [(render_path(p), a, b) for p, a, b in found] == [
        ("$.user.name", "ann", "bob"),
        ("$.user.age", 3, MISSING),
        ("$.user.email", MISSING, "b@x"),
    ]


def test_arrays_compare_by_index_and_length():
    assert paths([1, 2, 3], [1, 5]) == ["$[1]", "$[2]"]


def test_types_matter_but_number_spelling_does_not():
    assert diff({"n": 1}, {"n": 1.0}) == []
    assert paths({"n": 1}, {"n": "1"}) == ["$.n"]
    assert paths({"b": True}, {"b": 1}) == ["$.b"]
    assert paths({"x": None}, {"x": {}}) == ["$.x"]


def test_fields_generalise_indices_and_id_like_keys():
    assert field_path(("items", 3, "price")) == "$.items[*].price"
    assert field_path(("users", "12345", "name")) == "$.users.*.name"
    assert field_path(("weird key", "a.b")) == '$["weird key"]["a.b"]'


def test_keys_that_look_like_tokens_are_not_printed_in_paths():
    assert render_path(("sessions", "dGhpc2lzYXRva2VuMTIzNDU2Nzg5")) == "$.sessions.*"


@pytest.mark.parametrize(
    ("pattern", "ignored"),
    [
        ("$.meta", True),  # a whole subtree
        ("$.meta.generated_at", True),
        ("$.items[*].updated_at", False),  # another field in the same document
        ("$..generated_at", True),
        ("$.*.generated_at", True),
        ('$["meta"]', True),
        ("$.other", False),
    ],
)
def test_ignore_patterns(pattern, ignored):
    a = {"meta": {"generated_at": 1}}
    b = {"meta": {"generated_at": 2}}
    assert (paths(a, b, [pattern]) == []) is ignored


def test_ignore_patterns_with_indices_and_deep_wildcards():
    a = {"items": [{"id": 1, "updated_at": 1}, {"id": 2, "updated_at": 1}]}
    b = {"items": [{"id": 1, "updated_at": 5}, {"id": 3, "updated_at": 6}]}
    assert paths(a, b, ["$.items[*].updated_at"]) == ["$.items[1].id"]
    assert paths(a, b, ["$..updated_at"]) == ["$.items[1].id"]
    assert paths(a, b, ["$.items[1]"]) == ["$.items[0].updated_at"]


@pytest.mark.parametrize("bad", ["meta", "$.", "$[x]", "$.a[", "$..", "$['a]"])
def test_bad_patterns_are_refused(bad):
    with pytest.raises(ValueError):
        JsonPattern.parse(bad)


def test_the_number_of_differences_is_bounded():
    assert len(diff(list(range(1000)), list(range(1, 1001)), limit=50)) == 50
