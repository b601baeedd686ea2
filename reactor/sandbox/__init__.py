"""A local Chargebee stand-in for tests and the demo.

It implements the slice of Chargebee API v2 the reactor uses (retrieve/list invoices, write_off,
events, retrieve customer and subscription) with Chargebee's documented behaviour — Basic auth,
error bodies with their legacy fields, idempotency replay, 409 invalid_state_for_request, 429 +
Retry-After, only the documented list filters, opaque JSON-array offsets, deleted invoices, follow-up
webhooks that can be skipped — so tests run against the same failure modes as production. Where
Chargebee's behaviour is UNCONFIRMED (400 vs 409, what a deleted invoice answers), a setting picks
among the plausible answers (Chargebee's API reference: https://apidocs.chargebee.com/docs/api).
"""

from .app import create_sandbox_app
from .demo import demo_payment_failed_event, seed_demo
from .errors import ApiError
from .server import SandboxServer, main, serve
from .state import DEMO_API_KEY, SandboxSettings, SandboxState

__all__ = [
    "DEMO_API_KEY",
    "ApiError",
    "SandboxServer",
    "SandboxSettings",
    "SandboxState",
    "create_sandbox_app",
    "demo_payment_failed_event",
    "main",
    "seed_demo",
    "serve",
]
