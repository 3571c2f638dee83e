"""The test double itself: the answers the other tests rely on are the ones it really gives."""

from __future__ import annotations

import json
from typing import Any

import requests

from reverse_etl_tests.fake_customerio import MAX_REQUEST_BYTES, FakeCustomerIo

STRICT = {"X-Strict-Mode": "1"}


def post(
    server: FakeCustomerIo, calls: list[dict[str, Any]], headers: dict[str, str], key: str | None = None
) -> requests.Response:
    return requests.post(
        f"{server.base_url}/batch",
        data=json.dumps({"batch": calls}),
        auth=(key or server.api_key, ""),
        headers={"Content-Type": "application/json", **headers},
        timeout=10,
    )


def test_strict_mode_refuses_invalid_calls_with_400_and_meta_errors(customerio):
    valid = {"type": "identify", "userId": "1"}
    answer = post(customerio, [valid, {"type": "identify", "traits": {"plan": "pro"}}], STRICT)
    assert answer.status_code == 400
    assert answer.json() == {"meta": {"errors": ["batch[1]: identify requires userId or anonymousId"]}}
    assert customerio.accepted == [] and customerio.dropped == []  # the whole request is refused


def test_strict_mode_refuses_a_request_over_500_kb(customerio):
    big = [{"type": "identify", "userId": str(i), "traits": {"bio": "x" * 20_000}} for i in range(30)]
    answer = post(customerio, big, STRICT)
    assert len(customerio.requests[0].body) > MAX_REQUEST_BYTES
    assert answer.status_code == 400
    [error] = answer.json()["meta"]["errors"]
    assert "max 500KB" in error
    assert customerio.accepted == []


def test_without_strict_mode_invalid_calls_are_dropped_silently(customerio):
    answer = post(customerio, [{"type": "identify", "userId": "1"}, {"type": "track", "userId": "1"}], {})
    assert answer.status_code == 200
    assert [c["userId"] for c in customerio.accepted] == ["1"]
    assert [c["type"] for c in customerio.dropped] == ["track"]  # no event: dropped, not reported


def test_a_wrong_key_gets_401(customerio):
    answer = post(customerio, [{"type": "identify", "userId": "1"}], STRICT, key="wrong")
    assert answer.status_code == 401 and "errors" in answer.json()["meta"]
    assert customerio.accepted == []
