"""Every error a Chargebee call can raise (`ChargebeeError` and its subclasses), and the translation
of an error response into one (`error_from_response`). Callers branch on the class, never on text.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import requests


# Callers branch on the exception class, never on message text:
#
#   ChargebeeError
#   ├── RetryableError        429, 5xx, timeouts, connection errors, a 409 that is not
#   │   │                     invalid_state_for_request: try again later
#   │   └── RateLimitedError  429 (api_request_limit_exceeded, lock_timeout, ...)
#   │       └── Throttled     no slot of the shared call budget freed up in time; nothing was sent
#   ├── InvalidStateError     invalid_state_for_request (400 or 409): already settled elsewhere
#   ├── AuthError             401/403: wrong key or site; retrying will not help
#   ├── NotFoundError         404 (a deleted invoice may answer this)
#   └── RequestError          any other 4xx: our request is wrong
#       └── InvalidIdError    an id that cannot name a resource in an API path; nothing was sent
class ChargebeeError(Exception):
    """A Chargebee call did not give the answer asked for."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        api_error_code: str | None = None,
        error_type: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.api_error_code = api_error_code
        self.error_type = error_type
        self.param = param
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"(HTTP {self.status}")
            parts[-1] += f", {self.api_error_code})" if self.api_error_code else ")"
        return " ".join(parts)


class RetryableError(ChargebeeError):
    """Try again later: 5xx, a timeout, no connection, a 409 other than invalid_state_for_request."""


class RateLimitedError(RetryableError):
    """Chargebee answered 429; `retry_after` is its Retry-After, if it sent one."""


class Throttled(RateLimitedError):
    """No call slot became free within the allowed wait; nothing was sent. Try again later."""


class InvalidStateError(ChargebeeError):
    """invalid_state_for_request: the invoice was settled elsewhere."""


class AuthError(ChargebeeError):
    """401 or 403: wrong key or site; retrying will not help."""


class NotFoundError(ChargebeeError):
    """404: no such resource (a deleted invoice may answer this)."""


class RequestError(ChargebeeError):
    """Any other 4xx: our request is wrong."""


class InvalidIdError(RequestError):
    """An id that cannot name a resource in an API path (reactor/ids.py): empty, only dots, a '/',
    a space or a character no id has. Raised before anything is sent."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, min(seconds, 24 * 3600.0))


def _text(body: dict[str, Any], *names: str) -> str | None:
    """The first of `names` present in `body` as a non-empty string (None when absent or another type)."""
    for name in names:
        value = body.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def error_code_of(body: dict[str, Any]) -> str | None:
    """`api_error_code`, or the legacy `error_code` only when `api_error_code` is absent altogether.

    The two differ in real bodies (`duplicate_entry` vs `param_not_unique`), so a present
    `api_error_code` always wins, even one of an unexpected type (then: no code)."""
    if "api_error_code" in body:
        return _text(body, "api_error_code")
    return _text(body, "error_code")


def error_from_response(response: requests.Response) -> ChargebeeError:
    """Map an error response to the exception class callers branch on."""
    # Bodies are read defensively (https://apidocs.chargebee.com/docs/api/error-handling and
    # Chargebee's OpenAPI spec): 401 and 429 bodies have no `type`, and a proxy may answer with HTML.
    # The HTTP status alone decides when the body says nothing usable.
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    code = error_code_of(body)
    message = _text(body, "message", "error_msg") or f"Chargebee answered HTTP {status}"
    kwargs: dict[str, Any] = {
        "status": status,
        "api_error_code": code,
        "error_type": _text(body, "type"),
        "param": _text(body, "param", "error_param"),
        "retry_after": parse_retry_after(response.headers.get("Retry-After")),
    }
    if status == 429:
        return RateLimitedError(message, **kwargs)
    if status >= 500:
        return RetryableError(message, **kwargs)
    if code == "invalid_state_for_request":
        return InvalidStateError(message, **kwargs)
    if status in (401, 403):
        return AuthError(message, **kwargs)
    if status == 404:
        return NotFoundError(message, **kwargs)
    if status == 409:
        # Chargebee documents only invalid_state_for_request for 409. Another 409 has been reported
        # for an idempotent request still in flight (UNCONFIRMED): a later retry with the same key
        # gets the stored answer, so retrying is right and concluding "settled" would not be.
        return RetryableError(message, **kwargs)
    return RequestError(message, **kwargs)
