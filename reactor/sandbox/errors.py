"""Chargebee-shaped API errors raised inside the sandbox and rendered as Chargebee error bodies.

A real error body carries `message`, `type` and `api_error_code`, plus legacy fields the official
SDKs still read: `error_code` (which is NOT the same vocabulary as `api_error_code`), `error_msg`,
`error_param` and `http_status_code`. A real example (as sent by Chargebee, quoted in chargebee-python's issues):

    {"api_error_code": "duplicate_entry", "error_code": "param_not_unique", "error_msg": ...,
     "error_param": "id", "http_status_code": 400, "message": ..., "param": "id", "type": ...}

401 and 429 bodies carry no `type`. Clients must branch on `api_error_code` (and the HTTP
status), never on the legacy `error_code`; the sandbox makes them differ so a client that reads the
wrong one fails in tests.
"""

from __future__ import annotations

from typing import Any

# Chargebee groups error codes into a few `type`s; SDKs pick the exception class from it.
# None: the body has no `type` at all (401 and 429, as real bodies show).
_TYPE_BY_STATUS: dict[int, str | None] = {
    400: "invalid_request",
    401: None,
    403: "invalid_request",
    404: "invalid_request",
    405: "invalid_request",
    409: "invalid_request",
    422: "invalid_request",
    429: None,
    500: "untyped",
    502: "untyped",
    503: "operation_failed",
    504: "untyped",
}

_DEFAULT_CODE_BY_STATUS = {
    400: "param_wrong_value",
    401: "api_authentication_failed",
    403: "api_authorization_failed",
    404: "resource_not_found",
    405: "http_method_not_supported",
    409: "invalid_state_for_request",
    422: "unable_to_process_request",
    429: "api_request_limit_exceeded",
    500: "internal_error",
    503: "internal_temporary_error",
}

# The legacy `error_code` sent next to each `api_error_code`. Only duplicate_entry -> param_not_unique
# is taken from a real body; the others are plausible guesses chosen to differ
# from `api_error_code`, so that code reading `error_code` first is caught by the tests.
LEGACY_ERROR_CODES = {
    "duplicate_entry": "param_not_unique",
    "param_wrong_value": "param_invalid_value",
    "invalid_request": "invalid_request_params",
    "resource_not_found": "referenced_resource_not_found",
    "invalid_state_for_request": "invalid_state",
    "api_authentication_failed": "api_authentication_invalid_key",
    "api_authorization_failed": "api_authorization_not_permitted",
    "http_method_not_supported": "http_method_not_allowed",
    "unable_to_process_request": "request_not_processable",
    "api_request_limit_exceeded": "request_limit_exceeded",
    "lock_timeout": "resource_locked",
    "internal_error": "internal_server_error",
    "internal_temporary_error": "service_temporarily_unavailable",
}


class ApiError(Exception):
    """A Chargebee API error: carries everything needed to render the HTTP response."""

    def __init__(
        self,
        status: int,
        message: str,
        api_error_code: str | None = None,
        *,
        param: str | None = None,
        error_type: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.api_error_code = api_error_code or _DEFAULT_CODE_BY_STATUS.get(status, "internal_error")
        self.param = param
        self.error_type = error_type or _TYPE_BY_STATUS.get(status, "untyped")
        self.retry_after = retry_after

    @property
    def legacy_error_code(self) -> str:
        return LEGACY_ERROR_CODES.get(self.api_error_code, self.api_error_code)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message}
        if self.error_type is not None:
            body["type"] = self.error_type
        body["api_error_code"] = self.api_error_code
        if self.param is not None:
            body["param"] = self.param
        body.update(error_code=self.legacy_error_code, error_msg=self.message, http_status_code=self.status)
        if self.param is not None:
            body["error_param"] = self.param
        return body

    def headers(self) -> dict[str, str]:
        if self.retry_after is not None and self.status in (429, 503):
            return {"Retry-After": str(self.retry_after)}
        return {}


def wrong_value(param: str, message: str) -> ApiError:
    """400 param_wrong_value naming the offending parameter, as Chargebee does for validation errors."""
    return ApiError(400, message, "param_wrong_value", param=param)


def not_found(resource: str, resource_id: str) -> ApiError:
    return ApiError(404, f"Sorry, we couldn't find that resource: {resource} {resource_id!r}.")
