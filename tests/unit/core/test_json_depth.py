"""The JSON depth limit read from the text agrees with the depth of the parsed document."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orb_bridge.core.http_request import MAX_JSON_DEPTH, json_depth_exceeds
from tests.support.strategies import fuzz_settings

# Strings full of what could fool a text scan: brackets, quotes and backslashes, escaped.
TRICKY_TEXT = st.text(alphabet='{}[]"\\/:,ab\u00e9\U0001f600 \n', max_size=12)
DOCUMENTS = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TRICKY_TEXT, children, max_size=4),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(child) for child in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(child) for child in value), default=0)
    return 0


@fuzz_settings(300)
@given(document=DOCUMENTS, limit=st.integers(min_value=0, max_value=8), ensure_ascii=st.booleans())
def test_text_depth_agrees_with_the_parsed_document(document: Any, limit: int, ensure_ascii: bool) -> None:
    raw = json.dumps(document, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
    assert json_depth_exceeds(raw, limit) == (depth(document) > limit)


def test_the_limit_itself_and_one_more() -> None:
    deepest_allowed: dict[str, Any] = {"a": "[" * 100}
    for _ in range(MAX_JSON_DEPTH - 1):
        deepest_allowed = {"a": deepest_allowed}
    raw = json.dumps(deepest_allowed).encode()
    assert not json_depth_exceeds(raw)
    assert json_depth_exceeds(json.dumps([deepest_allowed]).encode())
    assert not json_depth_exceeds(json.dumps([[1, 2]] * 500).encode())  # many brackets, shallow
