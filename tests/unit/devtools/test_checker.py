"""The stream checker's own wording: what a field that failed a check holds."""

from __future__ import annotations

import pytest

from tickhub.devtools.checker.values import MISSING, kind


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (MISSING, "missing"),
        (None, "is null"),
        (True, "is a boolean"),
        (3, "is a number"),
        (2.5, "is a number"),
        ("x", "is a string"),
        ([1], "is an array"),
        ({"a": 1}, "is an object"),
        ((1, 2), "is tuple"),
    ],
)
def test_kind_names_the_json_type_of_a_value(value: object, said: str) -> None:
    assert kind(value) == said
