"""The README's Quick start, as a user runs it: `reactor run` with nothing configured starts an
embedded Redis, the sandbox, gunicorn, a worker and the scheduler; the README's curl gets an
invoice written off once; the dashboard URL and login it prints open the dashboard over plain HTTP
and show that write-off; a second `reactor run` on the same port is refused; Ctrl-C stops it all.
Its output is not a terminal, so every line of it, its own and its processes', is a JSON log line."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from reactor.local.redis_server import free_port
from reactor.local.supervisor import DEV_WEBHOOK_PASSWORD, DEV_WEBHOOK_USER
from reactor.sandbox import DEMO_API_KEY
from tests.helpers import REPO, descendants, log_records, wait_for, wait_until
from tests.integration.helpers import token
from tests.integration.ops_helpers import kill_run, listening, printed_dashboard, printed_sandbox, reactor_run

pytestmark = pytest.mark.integration


def test_reactor_run_writes_the_readme_invoice_off_once_and_stops_on_ctrl_c(tmp_path: Path):
    port, sandbox_port = free_port(), free_port()
    proc = reactor_run(tmp_path, port, sandbox_port, "run")
    output = tmp_path / "run.log"
    try:
        wait_for(lambda: "Ready." in output.read_text(), timeout=60, what="`reactor run` to say Ready")
        wait_for(lambda: listening(port), timeout=30, what="gunicorn to listen")
        body = (REPO / "examples" / "payment_failed_exhausted.json").read_bytes()
        url = f"http://127.0.0.1:{port}/webhooks/chargebee"
        headers = {"Content-Type": "application/json"}
        auth = (DEV_WEBHOOK_USER, DEV_WEBHOOK_PASSWORD)
        first = requests.post(url, data=body, headers=headers, auth=auth, timeout=10)
        assert first.status_code == 200
        assert (
            first.text.strip() == '{"event_id":"ev_demo_payment_failed_1001","status":"queued"}'
        )  # as the README shows

        sandbox = printed_sandbox(output.read_text())
        invoice_url = f"{sandbox}/invoices/inv_demo_1001"

        def invoice() -> dict:
            return requests.get(invoice_url, auth=(DEMO_API_KEY, ""), timeout=5).json()["invoice"]

        wait_for(lambda: invoice()["status"] == "paid", timeout=30, what="the demo invoice to be written off")
        again = requests.post(url, data=body, headers=headers, auth=auth, timeout=10)
        assert again.json()["status"] == "duplicate"

        dashboard, user, password = printed_dashboard(output.read_text())
        assert dashboard == f"http://127.0.0.1:{port}/admin/"
        browser = requests.Session()
        form = browser.get(dashboard, timeout=10)
        assert form.status_code == 200 and "/admin/login" in form.url  # on, and behind its login
        answer = browser.post(form.url, data={"user": user, "password": password, "csrf": token(form.text)}, timeout=10)
        # The session cookie came back over plain HTTP (a `Secure` one would not): the dashboard, not the form.
        assert answer.status_code == 200 and answer.url == dashboard, answer.text[-2000:]
        assert "Secure" not in answer.history[0].headers["Set-Cookie"]
        assert "<h2>Recent decisions</h2>" in answer.text
        wait_for(
            lambda: "inv_demo_1001" in browser.get(dashboard, timeout=10).text,
            timeout=30,
            what="the dashboard to show the write-off",
        )

        second = reactor_run(tmp_path, port, free_port(), "second")  # its own var/: only the port is shared
        assert second.wait(60) != 0
        [refusal] = log_records((tmp_path / "second.log").read_text(), what="the second run's output")
        assert refusal["level"] == "critical" and f"cannot listen on 127.0.0.1:{port}" in refusal["msg"]

        children = descendants(proc.pid)
        assert len(children) >= 4  # redis-server, gunicorn (+ its workers), worker, cron
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        assert proc.wait(60) == 0

        def alive() -> list[int]:
            return [pid for pid in children if os.path.exists(f"/proc/{pid}") and "zombie" not in _state(pid)]

        wait_until(lambda: not alive(), timeout=10)  # a grandchild may end a moment after `reactor run`
        assert alive() == [], f"left running after Ctrl-C: {alive()}"
        log = output.read_text()
        # A clean stop: Redis outlives the processes that use it, and no job is cut short.
        assert "Traceback" not in log and "Connection refused" not in log, log[-3000:]
        assert "Cold shut down" not in log
        loggers = {record["logger"] for record in log_records(log, what="the output of `reactor run`")}
        assert {"reactor.local.supervisor", "gunicorn.error", "rq.worker", "rq.cron", "reactor.jobs"} <= loggers
        assert not listening(port) and not listening(urlsplit(sandbox).port)
    finally:
        kill_run(proc)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0].lower()
    except (OSError, IndexError):
        return "zombie"
