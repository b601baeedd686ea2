"""Chargebee: the API client (`client.py`), the errors it raises (`errors.py`) and the call budget
all workers share (`ratelimit.py`, imported from there: it loads the `limits` package, which the
CLI's one-off calls need not pay for at start-up)."""

from .client import (
    IDEMPOTENCY_HEADER,
    MAX_COMMENT,
    REPLAYED_HEADER,
    SKIP_WEBHOOKS_HEADER,
    ChargebeeClient,
    WriteOffResult,
)
from .errors import (
    AuthError,
    ChargebeeError,
    InvalidIdError,
    InvalidStateError,
    NotFoundError,
    RateLimitedError,
    RequestError,
    RetryableError,
    Throttled,
    error_code_of,
    error_from_response,
    parse_retry_after,
)

__all__ = [
    "IDEMPOTENCY_HEADER",
    "MAX_COMMENT",
    "REPLAYED_HEADER",
    "SKIP_WEBHOOKS_HEADER",
    "AuthError",
    "ChargebeeClient",
    "ChargebeeError",
    "InvalidIdError",
    "InvalidStateError",
    "NotFoundError",
    "RateLimitedError",
    "RequestError",
    "RetryableError",
    "Throttled",
    "WriteOffResult",
    "error_code_of",
    "error_from_response",
    "parse_retry_after",
]
