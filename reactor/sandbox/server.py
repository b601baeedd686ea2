"""Running the sandbox: in a background thread for tests, or in the foreground for demos/CLI."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Sequence
from types import TracebackType

from werkzeug.serving import BaseWSGIServer, make_server

from .app import API_PREFIX, create_sandbox_app
from .demo import seed_demo
from .state import DEMO_API_KEY, SandboxSettings, SandboxState


class SandboxServer:
    """A real HTTP sandbox on a (free) port, so tests exercise the reactor's actual HTTP client."""

    def __init__(self, state: SandboxState | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state if state is not None else SandboxState()
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return self.url + API_PREFIX

    def start(self) -> SandboxServer:
        """Bind (port 0 picks a free port, read back into `port`) and serve in a daemon thread. OSError
        when the port cannot be bound (werkzeug would end the process)."""
        if self._server is not None:
            return self
        # threaded=True: a latency fault on one request must not hold up the others.
        try:
            self._server = make_server(self.host, self.port, create_sandbox_app(self.state), threaded=True)
        except SystemExit as exc:  # werkzeug prints why it cannot bind (a port in use), then exits
            raise OSError(f"the sandbox cannot listen on {self.host}:{self.port}") from exc
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(host: str = "127.0.0.1", port: int = 8001, state: SandboxState | None = None) -> None:
    """Serve in the foreground until Ctrl-C; a fresh state is seeded with the demo invoices."""
    if state is None:
        state = SandboxState()
        seed_demo(state)
    server = make_server(host, port, create_sandbox_app(state), threaded=True)
    print(f"Chargebee sandbox at http://{host}:{server.server_port}{API_PREFIX}")
    print(f"API key: {state.api_key}   (HTTP Basic, empty password)")
    print(f"Control API: http://{host}:{server.server_port}/_sandbox/  (calls, faults, settings, webhook, ...)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m reactor.sandbox [--port 8001] [--webhook-url ...]` for running it by hand."""
    parser = argparse.ArgumentParser(prog="python -m reactor.sandbox", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--api-key", default=DEMO_API_KEY)
    parser.add_argument("--no-seed", action="store_true", help="start without the demo invoices")
    parser.add_argument("--webhook-url", help="POST follow-up events here (the reactor's webhook URL)")
    parser.add_argument("--webhook-user", default="")
    parser.add_argument("--webhook-password", default="")
    parser.add_argument("--invalid-state-status", type=int, choices=(400, 409), default=409)
    parser.add_argument("--calls-per-minute", type=int, default=None)
    parser.add_argument(
        "--deleted-invoice-retrieve-status",
        type=int,
        choices=(404, 200),
        default=404,
        help="GET of a deleted invoice: 404, or 200 with deleted: true (Chargebee's answer is unconfirmed)",
    )
    parser.add_argument(
        "--deleted-invoice-write-off-status",
        type=int,
        choices=(404, 400, 409),
        default=404,
        help="write_off of a deleted invoice: 404, or 400/409 invalid_state_for_request (unconfirmed)",
    )
    args = parser.parse_args(argv)
    defaults = SandboxSettings(
        invalid_state_status=args.invalid_state_status,
        calls_per_minute=args.calls_per_minute,
        deleted_invoice_retrieve_status=args.deleted_invoice_retrieve_status,
        deleted_invoice_write_off_status=args.deleted_invoice_write_off_status,
    )
    state = SandboxState(args.api_key, defaults=defaults)
    if not args.no_seed:
        seed_demo(state)
    if args.webhook_url:
        state.set_webhook_target(args.webhook_url, args.webhook_user, args.webhook_password)
    serve(args.host, args.port, state)
