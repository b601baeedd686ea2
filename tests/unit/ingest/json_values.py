"""JSON values as a hostile sender could write them, for the envelope parser's property tests
(test_event_properties.py, test_event_json.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Text including lone surrogates: json.dumps escapes them (\ud800), as a hostile sender would.
TEXT = st.one_of(st.text(max_size=8), st.text(st.characters(categories=["Cs", "Ll", "Nd"]), max_size=4))


def json_values(*integers: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    """Nested lists and objects of null, booleans, integers (any, and the ranges a test names in
    `integers`), floats with NaN and the infinities, and TEXT."""
    return st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            *integers,
            st.floats(allow_nan=True, allow_infinity=True),
            TEXT,
        ),
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)),
        max_leaves=25,
    )
