"""Finding 6 on the webhook side: a validly signed but deeply nested body gave a 500 (Orb then
redelivers it for days); NaN/Infinity are not JSON. Both are a 400, nothing is forwarded."""

from __future__ import annotations

import pytest

from tests.support.webhook_stack import delivery

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.mark.parametrize("depth", [65, 990, 3000])
def test_a_signed_deeply_nested_webhook_is_a_400(stack, depth):
    body = (
        '{"id":"whk_deep","type":"invoice.issued","created_at":"2024-03-27T15:42:29Z","x":'
        + "[" * depth
        + "]" * depth
        + "}"
    ).encode()
    status, answer = stack.invoke(delivery(body))
    assert status == 400 and "nested more than 64 levels" in answer["errors"][0]
    assert stack.forwarded() == []


@pytest.mark.parametrize("constant", ["NaN", "Infinity"])
def test_a_signed_webhook_with_nan_is_a_400(stack, constant):
    body = f'{{"id":"whk_nan","type":"invoice.issued","created_at":"2024-03-27T15:42:29Z","x":{constant}}}'.encode()
    status, _ = stack.invoke(delivery(body))
    assert status == 400 and stack.forwarded() == []


def test_validation_errors_echo_no_caller_values(stack):
    body = ('{"id":"' + "i" * 5000 + '","type":"' + "t" * 5000 + '","created_at":"' + "c" * 5000 + '"}').encode()
    status, answer = stack.invoke(delivery(body))
    assert status == 400 and all(len(error) <= 260 for error in answer["errors"])
    assert "iiiiiiiiii" not in str(answer)
