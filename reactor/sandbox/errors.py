"""Chargebee-shaped API errors raised inside the sandbox and rendered as Chargebee error bodies.

Chargebee answers every failure with a JSON body carrying `message`, `type`, `api_error_code` (plus the
legacy `error_code`/`http_status_code` the official SDKs still read), so the reactor's error
classification is exercised exactly as in production.
"""

from __future__ import annotations

from typing import Any

# Chargebee groups error codes into a few `type`s; SDKs pick the exception class from it.
_TYPE_BY_STATUS = {
    400: "invalid_request",
    401: "invalid_request",
    403: "invalid_request",
    404: "invalid_request",
    405: "invalid_request",
    409: "invalid_request",
    422: "invalid_request",
    429: "operation_failed",
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

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message": self.message,
            "type": self.error_type,
            "api_error_code": self.api_error_code,
            "http_status_code": self.status,
            "error_code": self.api_error_code,
        }
        if self.param is not None:
            body["param"] = self.param
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
