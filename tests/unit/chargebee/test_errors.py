"""Mapping Chargebee's error responses to the exception classes callers branch on."""

import json

import pytest
import requests

from reactor.chargebee import (
    AuthError,
    InvalidStateError,
    NotFoundError,
    RateLimitedError,
    RequestError,
    RetryableError,
    error_from_response,
    parse_retry_after,
)


def response(status, body=None, headers=None):
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body).encode() if body is not None else b"<html>Bad gateway</html>"
    r.headers.update(headers or {})
    return r


@pytest.mark.parametrize("status", [400, 409])
def test_invalid_state_is_recognised_on_400_and_409(status):
    err = error_from_response(
        response(
            status,
            {
                "message": "already paid",
                "type": "invalid_request",
                "api_error_code": "invalid_state_for_request",
            },
        )
    )
    assert isinstance(err, InvalidStateError) and err.status == status and err.message == "already paid"


def test_legacy_error_code_field_is_read_when_api_error_code_is_absent():
    assert isinstance(
        error_from_response(response(409, {"error_code": "invalid_state_for_request"})), InvalidStateError
    )


def test_429_is_rate_limited_and_carries_retry_after():
    err = error_from_response(
        response(
            429,
            {"api_error_code": "api_request_limit_exceeded", "type": "operation_failed"},
            {"Retry-After": "7"},
        )
    )
    assert isinstance(err, RateLimitedError) and isinstance(err, RetryableError)
    assert err.retry_after == 7.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retryable_even_with_a_non_json_body(status):
    err = error_from_response(response(status))
    assert type(err) is RetryableError and err.status == status


@pytest.mark.parametrize(
    ("status", "cls"),
    [(401, AuthError), (403, AuthError), (404, NotFoundError), (400, RequestError), (422, RequestError)],
)
def test_client_errors_are_not_retryable(status, cls):
    err = error_from_response(response(status, {"api_error_code": "x", "message": "m"}))
    assert type(err) is cls and not isinstance(err, RetryableError)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-4", 0.0),
        ("junk", None),
        (None, None),
        ("", None),
        ("1e9", 86400.0),
        ("nan", None),
    ],
)
def test_retry_after_parsing(value, seconds):
    assert parse_retry_after(value) == seconds


def test_retry_after_as_an_http_date_in_the_past_is_zero():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_api_error_code_wins_over_a_differing_legacy_error_code():
    err = error_from_response(
        response(400, {"api_error_code": "duplicate_entry", "error_code": "param_not_unique", "message": "m"})
    )
    assert type(err) is RequestError and err.api_error_code == "duplicate_entry"


def test_a_present_but_unusable_api_error_code_does_not_fall_back_to_the_legacy_one():
    err = error_from_response(response(400, {"api_error_code": None, "error_code": "invalid_state_for_request"}))
    assert type(err) is RequestError and err.api_error_code is None


def test_legacy_message_and_param_fields_are_used_when_the_current_ones_are_missing():
    err = error_from_response(response(400, {"error_msg": "comment : too long", "error_param": "comment"}))
    assert (err.message, err.param) == ("comment : too long", "comment")


@pytest.mark.parametrize("status", [401, 429])
def test_bodies_without_type_have_no_error_type(status):
    err = error_from_response(response(status, {"api_error_code": "x", "message": "m"}))
    assert err.error_type is None and err.api_error_code == "x"


def test_invalid_state_code_on_a_5xx_is_still_retryable():
    err = error_from_response(response(503, {"api_error_code": "invalid_state_for_request"}))
    assert type(err) is RetryableError


def test_409_without_invalid_state_code_is_retryable_not_settled():
    err = error_from_response(response(409))
    assert type(err) is RetryableError
