"""REACTOR_NOTIFY_URL: what a person must act on reaches a Slack-compatible receiver as a digest.

The receiver is a real HTTP server on a free port; the worker is a real `reactor worker`; the sender
is `reactor cron` as a process, or its `Notifier` in this process where a test needs to count
rounds. A held write-off and a dead letter each make one message, 500 dead letters make one, a
receiver that is down gets the digest later, one that trickles its answer is cut off at the deadline,
and no message carries a secret or an event body, nor a log line the URL's token.
"""

from __future__ import annotations

import itertools
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry

from reactor.config import Settings
from reactor.console.notify import MAX_LINES, Notifier
from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.keys import Keys
from reactor.notices import Notices
from reactor.sandbox import SandboxServer
from tests.helpers import REPO, WEBHOOK_PASSWORD, WEBHOOK_USER, WebServer, wait_for, worker_env
from tests.integration.helpers import EXHAUSTED_RULES, exhausted_invoice, make_event, post_event
from tests.integration.ops_helpers import reactor_process

pytestmark = pytest.mark.integration

BUDGET_RULES = """\
version: 1
mode: live
limits:
  max_write_off: {USD: 500}
  max_per_day: {USD: 10}
rules:
  - name: dunning-exhausted
    when:
      - invoice.dunning_status: exhausted
    action: write_off
"""


class Receiver:
    """An incoming-webhook receiver: records each POST (its headers and JSON) and answers `status`.
    `stop()` closes the port (the receiver is down); `start()` opens the same port again."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                receiver.messages.append(json.loads(body))
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/tok3n-in-the-path"

    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages]


class Trickler:
    """A receiver that answers a byte every `pause` seconds until stopped: after reading the request,
    `HTTP/1.1 200 OK` and then a header line (one without a colon, so the headers are malformed too);
    with `tls`, the head of a TLS handshake record of 16 KiB and then its bytes, so the handshake
    never ends."""

    def __init__(self, tls: bool = False, pause: float = 0.2) -> None:
        self.tls = tls
        self.pause = pause
        self.stopped = threading.Event()
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/services/T000/B000/tok3n-in-the-path?token=qu3ry-tok3n"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()
        self.server.close()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            if self.tls:
                head, trickled = b"\x16\x03\x03\x40\x00", b"\x00"
            else:
                received = b""
                while b"\r\n\r\n" not in received:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    received += chunk
                head, trickled = b"HTTP/1.1 200 OK\r\n", b"X-Slow-Header-Without-A-Colon"
            try:
                conn.sendall(head)
                for byte in itertools.cycle(trickled):
                    if self.stopped.wait(self.pause):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:  # the client hung up
                return

    def stop(self) -> None:
        self.stopped.set()


@pytest.fixture
def receiver() -> Any:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def notify_settings(settings: Settings, receiver: Receiver) -> Settings:
    return replace(settings, notify_url=receiver.url, notify_interval=1)


def reactor_cron(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    env = worker_env(settings)
    env["REACTOR_SWEEP_CRON"] = ""  # the digest only
    log = log_path.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "reactor", "cron"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def outcomes(connection: redis.Redis, invoice_id: str) -> list[str]:
    return [r.outcome for r in AuditLog(connection).query(AuditFilter(invoice_id=invoice_id))]


def pending(connection: redis.Redis, settings: Settings) -> int:
    return int(connection.xlen(Keys(settings.key_prefix).notices()))


def test_a_held_write_off_is_one_message_from_reactor_cron(
    sandbox: SandboxServer, redis_conn, start_worker, rules_file, notify_settings, receiver, tmp_path
):
    rules_file(BUDGET_RULES)
    invoice = exhausted_invoice(sandbox)  # 12.50 USD, over the day's 10 USD
    web = WebServer(notify_settings)
    cron = None
    try:
        start_worker(notify_settings)
        assert post_event(web.webhook_url, make_event(invoice, card={"masked_number": "****4242"})).status_code == 200
        wait_for(lambda: "held" in outcomes(redis_conn, invoice["id"]), what="the write-off held")
        # The budget notice and the held notice are added a moment apart: a digest round between
        # them would rightly send two messages, so the sender starts once both wait.
        wait_for(lambda: pending(redis_conn, notify_settings) == 2, what="the budget and held notices")
        cron = reactor_cron(notify_settings, tmp_path / "cron.log")
        wait_for(lambda: receiver.messages, timeout=20, what="the digest at the receiver")
        wait_for(lambda: pending(redis_conn, notify_settings) == 0, what="the notices sent")
    finally:
        if cron is not None:
            stop(cron)
        web.stop()

    [text] = receiver.texts()
    assert "1 write-offs held for a person" in text and invoice["id"] in text and "12.50 USD" in text
    assert "1 budgets used up" in text and "max_per_day for USD" in text
    assert "4242" not in text and "dunning_status" not in text, "no event body in a message"
    assert "sending a digest" in (tmp_path / "cron.log").read_text()


def test_an_undo_is_told_and_the_digest_shows_the_day_net_of_it(
    sandbox: SandboxServer, our_write_off, redis_conn, notify_settings, receiver, tmp_path
):
    invoice_id = our_write_off["id"]
    undone = reactor_process(notify_settings, "undo", invoice_id, "--reason", "customer disputes the charge")
    assert undone.returncode == 0, undone.stderr

    cron = reactor_cron(notify_settings, tmp_path / "cron.log")
    try:
        wait_for(lambda: receiver.texts(), timeout=30, what="the digest")
    finally:
        stop(cron)

    [text] = receiver.texts()
    assert "*1 write-offs undone by a person, held until released" in text
    assert f"• {invoice_id}: 12.50 USD (rule dunning-exhausted) undone by " in text
    assert "customer disputes the charge" in text
    assert text.endswith(
        "*written off today (UTC), net of undos*\n• 0.00 USD (12.50 USD written off, 12.50 undone since)"
    )


def test_a_dead_letter_is_one_message_and_told_once(
    sandbox: SandboxServer, web: WebServer, redis_conn, start_worker, settings, receiver
):
    invoice = exhausted_invoice(sandbox)
    sandbox.state.add_fault(match="write_off", status=500, times=None)
    event = make_event(invoice)
    assert post_event(web.webhook_url, event).status_code == 200
    start_worker()
    registry = FailedJobRegistry(settings.queue_name, connection=redis_conn)
    wait_for(lambda: registry.count == 1, timeout=30, what="the job in the dead letters")
    notifier = Notifier(replace(settings, notify_url=receiver.url), redis_conn)

    assert notifier.round() is True
    assert notifier.round() is None, "nothing new: no second message"

    [text] = receiver.texts()
    assert "1 new dead letters" in text and f"evaluate-{event['id']}" in text and invoice["id"] in text
    assert "RetryableError" in text and "HTTP 500" in text
    assert receiver.headers[0]["content-type"] == "application/json"


def test_500_dead_letters_are_one_digest(redis_conn, settings, receiver):
    queue = Queue(settings.queue_name, connection=redis_conn)
    registry = FailedJobRegistry(queue=queue)
    with redis_conn.pipeline() as pipe:
        for i in range(500):
            job = Job.create(
                "reactor.jobs.evaluate", args=(f"ev_burst_{i}",), id=f"evaluate-ev_burst_{i}", connection=redis_conn
            )
            job.save(pipeline=pipe)
            registry.add(job, ttl=3600, pipeline=pipe, exc_string="reactor.chargebee.errors.AuthError: no")
        pipe.execute()
    notifier = Notifier(replace(settings, notify_url=receiver.url), redis_conn)

    assert notifier.round() is True
    assert notifier.round() is None

    [text] = receiver.texts()
    assert "500 new dead letters" in text
    assert text.count("evaluate-ev_burst_") == MAX_LINES and f"and {500 - MAX_LINES} more" in text
    assert len(text) < 4000, "within what chat tools take in one message"


def test_a_receiver_that_is_down_gets_the_digest_later_and_no_job_waits(
    sandbox: SandboxServer, redis_conn, start_worker, rules_file, notify_settings, receiver
):
    receiver.stop()  # down: the port refuses connections
    rules_file(BUDGET_RULES)
    invoice = exhausted_invoice(sandbox)
    web = WebServer(notify_settings)
    notifier = Notifier(notify_settings, redis_conn)
    stopping = threading.Event()
    thread = threading.Thread(target=notifier.run, args=(stopping,), daemon=True)
    try:
        start_worker(notify_settings)
        assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
        wait_for(lambda: "held" in outcomes(redis_conn, invoice["id"]), what="the job done while the receiver is down")
        assert pending(redis_conn, notify_settings) == 2, "the held write-off and the budget wait in Redis"
        thread.start()
        wait_for(lambda: notifier.failures >= 1, what="a round that found the receiver down")

        receiver.status = 503  # up, but failing: still kept
        receiver.start()
        wait_for(lambda: receiver.messages, timeout=30, what="a try at the failing receiver")
        assert pending(redis_conn, notify_settings) == 2
        receiver.status = 200
        wait_for(lambda: len(receiver.messages) >= 2, timeout=30, what="the digest sent after the receiver came back")
        wait_for(lambda: pending(redis_conn, notify_settings) == 0, what="the notices gone once taken")
    finally:
        stopping.set()
        if thread.is_alive():
            thread.join(15)
        web.stop()
    assert invoice["id"] in receiver.texts()[-1]
    assert all(t == receiver.texts()[-1] for t in receiver.texts()), "the same digest, tried again"


def test_no_message_carries_a_secret(redis_conn, settings, receiver):
    secret = replace(
        settings,
        notify_url=receiver.url,
        admin_password="dashboard-pass-123",
        secret_key="session-signing-key-456",
    )
    notices = Notices(redis_conn, secret.key_prefix)
    notices.add("chargebee_auth", f"retrieve invoice with key {secret.chargebee_api_key}: refused (HTTP 401)")
    notices.add("rules_refused", f"rules.yaml: password={WEBHOOK_PASSWORD} and {secret.admin_password}")
    notices.add("held", f"Authorization: Basic dGVzdDp0ZXN0 {secret.secret_key} at {receiver.url}")
    notices.add("dead_letter", "job-1: fetched https://user:hunter22@example.test/x")

    assert Notifier(secret, redis_conn).round() is True

    [text] = receiver.texts()
    body = json.dumps(receiver.messages[0])
    for value in (
        secret.chargebee_api_key,
        WEBHOOK_PASSWORD,
        secret.admin_password,
        secret.secret_key,
        "tok3n-in-the-path",
        "dGVzdDp0ZXN0",
        "hunter22",
    ):
        assert value not in body, value
    assert text.count("[redacted]") >= 6
    assert "authorization" not in receiver.headers[0], "the POST carries no credentials"


def test_a_refused_api_key_is_told_once_beside_its_dead_letters_and_never_shown(
    sandbox: SandboxServer, redis_conn, start_worker, rules_file, notify_settings, receiver
):
    rules_file(BUDGET_RULES.replace("  max_per_day: {USD: 10}\n", ""))
    wrong = replace(notify_settings, chargebee_api_key="live_wrong_key_0123456789")
    invoices = [exhausted_invoice(sandbox) for _ in range(3)]
    web = WebServer(wrong)
    try:
        start_worker(wrong)
        for invoice in invoices:
            assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
        registry = FailedJobRegistry(wrong.queue_name, connection=redis_conn)
        wait_for(lambda: registry.count == 3, timeout=30, what="three jobs refused by Chargebee")
    finally:
        web.stop()
    assert pending(redis_conn, wrong) == 1, "the refused key told once, not per job"

    assert Notifier(wrong, redis_conn).round() is True

    [text] = receiver.texts()
    assert "1 Chargebee refused the API key" in text and "HTTP 401" in text
    assert "3 new dead letters" in text and all(i["id"] in text for i in invoices)
    assert "live_wrong_key_0123456789" not in json.dumps(receiver.messages)


@pytest.mark.parametrize("tls", [False, True], ids=["http-headers", "https-handshake"])
def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_deadline_and_its_url_never_logged(
    redis_conn, settings, caplog, tls
):
    trickler = Trickler(tls=tls)
    notices = Notices(redis_conn, settings.key_prefix)
    notices.add("held", "inv_slow_1: over the day's budget")
    notifier = Notifier(replace(settings, notify_url=trickler.url), redis_conn, deadline=1.5)
    caplog.set_level(logging.DEBUG)
    outcome: list[bool | None] = []
    sender = threading.Thread(target=lambda: outcome.append(notifier.send()), daemon=True)
    started = time.monotonic()
    try:
        sender.start()
        sender.join(1.5 + 5)
        assert not sender.is_alive(), "the send held past its deadline by a receiver sending a byte at a time"
    finally:
        trickler.stop()  # a send still waiting ends: the receiver closes
        sender.join(10)

    assert trickler.connections == 1
    assert outcome == [False], "a reply cut short at the deadline is not a delivery"
    assert time.monotonic() - started < 1.5 + 5
    assert pending(redis_conn, settings) == 1, "the notice is kept for the next round"
    warning = [
        r.getMessage() for r in caplog.records if r.name == "reactor.console.notify" and r.levelname == "WARNING"
    ]
    assert warning == [
        f"notify: {trickler.url.split('/services')[0]} gave no complete answer within 1.5 s; 1 notices kept"
    ]
    logged = "\n".join(caplog.text.splitlines() + [r.getMessage() for r in caplog.records])
    assert "urllib3" in {r.name.split(".")[0] for r in caplog.records}, "urllib3's debug lines were captured"
    for secret in ("tok3n-in-the-path", "/services/T000", "qu3ry-tok3n"):
        assert secret not in logged, secret


def test_money_paid_after_our_write_off_is_told_in_the_digest(
    sandbox: SandboxServer, redis_conn, start_worker, rules_file, notify_settings, receiver, tmp_path
):
    rules_file(EXHAUSTED_RULES)
    sandbox.state.add_customer(id="cus_small")
    invoice = exhausted_invoice(sandbox)
    web = WebServer(notify_settings)
    cron = None
    try:
        start_worker(notify_settings)
        assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
        wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), what="our write-off")
        sandbox.state.set_webhook_target(web.webhook_url, WEBHOOK_USER, WEBHOOK_PASSWORD)
        _customer, txn, events = sandbox.state.record_excess_payment("cus_small", 1250, "USD")
        sandbox.state.deliver_async(events)
        wait_for(lambda: "recovery_candidate" in outcomes(redis_conn, invoice["id"]), what="the candidate")
        cron = reactor_cron(notify_settings, tmp_path / "cron.log")
        wait_for(lambda: receiver.texts(), timeout=30, what="the digest")
    finally:
        if cron is not None:
            stop(cron)
        web.stop()

    text = "\n".join(receiver.texts())
    assert "*1 money paid after our write-off (reactor recover INVOICE_ID" in text
    assert f"• {invoice['id']}: customer cus_small paid 12.50 USD transaction {txn['id']} after our write-off" in text
