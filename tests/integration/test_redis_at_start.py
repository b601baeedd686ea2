"""`reactor worker`, `cron` and `web` started before Redis answers (a reboot, a failover, a platform
restart) wait for it and then work as usual; a bad configuration is not waited for."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace

import pytest
import requests

from reactor.config import EX_CONFIG
from reactor.local.redis_server import free_port
from tests.helpers import WEBHOOK_PASSWORD, WEBHOOK_USER, WebServer, wait_for, worker_env
from tests.integration.helpers import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    exhausted_invoice,
    logged_in,
    make_event,
    outcomes,
    post_event,
)

pytestmark = pytest.mark.integration

WAITING = "waiting for Redis at 127.0.0.1:"

SWEEP_RULES = """\
version: 1
mode: live
rules:
  - name: swept-dunning-exhausted
    on: [sweep]
    when:
      - invoice.dunning_status: exhausted
    action: write_off
"""

BROKEN_RULES = """\
version: 1
mode: live
rules:
  - name: dunning-exhausted
    action: explode
"""


def test_a_worker_started_before_redis_waits_then_writes_off_an_event_delivered_after(
    late_redis, late_settings, sandbox, start_worker
):
    worker = start_worker(late_settings)
    wait_for(lambda: WAITING in worker.output(), timeout=30, what="the worker to say it waits for Redis")
    assert worker.proc.poll() is None, worker.output()

    late_redis.start()
    web = WebServer(late_settings)
    try:
        invoice = exhausted_invoice(sandbox)
        assert post_event(web.webhook_url, make_event(invoice)).json()["status"] == "queued"
        connection = late_redis.client()
        wait_for(lambda: "written_off" in outcomes(connection, invoice["id"]), timeout=60, what="the write-off")
    finally:
        web.stop()
    assert len(sandbox.state.write_off_calls()) == 1
    log = worker.output()
    assert log.count(WAITING) == 1 and "answers, after" in log and "Traceback" not in log, log


def test_a_worker_given_a_deadline_exits_1_once_it_passes(late_redis, late_settings, start_worker):
    worker = start_worker(replace(late_settings, redis_wait=1.0))
    assert worker.proc.wait(60) == 1, worker.output()
    log = worker.output()
    [refusal] = [line for line in map(json.loads, log.splitlines()) if line["level"] == "critical"]
    assert refusal["msg"].startswith(
        f"refused to start: cannot reach Redis at 127.0.0.1:{late_redis.port}/0 after 1 s: "
    )
    assert refusal["msg"].endswith("(REACTOR_REDIS_WAIT=1)") and "Traceback" not in log, log


def test_a_broken_rules_file_stops_a_worker_at_once_without_waiting_for_redis(late_settings, rules_file, start_worker):
    path = rules_file(BROKEN_RULES)
    worker = start_worker(late_settings)
    assert worker.proc.wait(60) == EX_CONFIG, worker.output()
    log = worker.output()
    assert f"{path}:5:13: unknown action 'explode'" in log
    assert "waiting for Redis" not in log, log


def test_cron_started_before_redis_waits_then_its_sweep_writes_off(
    late_redis, late_settings, sandbox, rules_file, start_worker, start_reactor
):
    rules_file(SWEEP_RULES)
    invoice = exhausted_invoice(sandbox)
    cron = start_reactor({**worker_env(late_settings), "REACTOR_SWEEP_INTERVAL": "2"}, "cron")
    wait_for(lambda: WAITING in cron.output(), timeout=30, what="cron to say it waits for Redis")
    assert cron.proc.poll() is None and "sweeping" not in cron.output(), cron.output()

    late_redis.start()
    wait_for(lambda: "sweeping unpaid invoices every 2 s" in cron.output(), timeout=60, what="cron to start")
    start_worker(late_settings)
    connection = late_redis.client()
    wait_for(lambda: "written_off" in outcomes(connection, invoice["id"]), timeout=60, what="the swept write-off")
    assert len(sandbox.state.write_off_calls()) == 1


def test_the_web_started_before_redis_answers_health_and_503_then_takes_webhooks(
    late_redis, late_settings, sandbox, start_worker, start_reactor
):
    web, url = start_web(start_reactor, late_settings)
    wait_for(lambda: WAITING in web.output(), timeout=30, what="the web to say it waits for Redis")
    wait_for(lambda: answers(f"{url}/healthz") == 200, timeout=30, what="gunicorn to answer /healthz")
    ready = requests.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 503 and ready.json()["checks"]["redis"] == "unavailable: ConnectionError"
    event = make_event(exhausted_invoice(sandbox))
    assert post_event(f"{url}/webhooks/chargebee", event).status_code == 503

    late_redis.start()
    wait_for(lambda: answers(f"{url}/readyz") == 200, timeout=60, what="/readyz to say ready")
    start_worker(late_settings)
    response = post_event(f"{url}/webhooks/chargebee", event)  # Chargebee's retry of the same event
    assert response.status_code == 200 and response.json()["status"] == "queued"
    connection = late_redis.client()
    invoice_id = event["content"]["invoice"]["id"]
    wait_for(lambda: "written_off" in outcomes(connection, invoice_id), timeout=60, what="the write-off")
    # The web's own watcher says so at its next try, which its backoff may put after the write-off.
    wait_for(lambda: "answers, after" in web.output(), timeout=60, what="the web to say Redis answers")
    assert "Traceback" not in web.output(), web.output()


def test_web_processes_started_before_redis_share_the_dashboards_signing_key_once_it_answers(late_redis, late_settings):
    """Two gunicorn workers, as two apps: each signs with a key of its own while Redis is away, and
    takes the shared one at its first dashboard request once Redis answers."""
    admin = replace(late_settings, admin_user=ADMIN_USER, admin_password=ADMIN_PASSWORD, admin_insecure_cookie=True)
    first, second = WebServer(admin), WebServer(admin)
    try:
        assert requests.get(f"{first.url}/healthz", timeout=10).status_code == 200
        late_redis.start()
        browser = logged_in(first)
        assert requests.get(f"{second.url}/admin/login", timeout=10).status_code == 200  # its first request
        page = browser.get(f"{second.url}/admin/", timeout=10)  # the first one's cookie, at the second
        assert page.status_code == 200 and "/admin/login" not in page.url, page.url
        assert "<h2>Recent decisions</h2>" in page.text
    finally:
        first.stop()
        second.stop()


def answers(url: str) -> int | None:
    """The status `url` answers with; None while nothing listens there."""
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


def test_the_web_given_a_deadline_answers_health_and_503_then_exits_1_once_it_passes(
    late_redis, late_settings, start_reactor
):
    web, url = start_web(start_reactor, replace(late_settings, redis_wait=15.0))  # room to boot under load
    wait_for(lambda: answers(f"{url}/healthz") == 200, timeout=30, what="gunicorn to answer /healthz")
    assert answers(f"{url}/readyz") == 503
    assert web.proc.wait(60) == 1, web.output()
    log = web.output()
    [refusal] = [line for line in map(json.loads, log.splitlines()) if line["level"] == "critical"]
    assert refusal["msg"].startswith(
        f"refused to start: cannot reach Redis at 127.0.0.1:{late_redis.port}/0 after 15 s: "
    )
    assert refusal["msg"].endswith("(REACTOR_REDIS_WAIT=15)") and "Traceback" not in log, log


def start_web(start_reactor, settings):
    """`reactor web` (one gunicorn worker) on a free port, taking webhooks; the process and its URL."""
    port = free_port()
    env = {**worker_env(settings), "REACTOR_WEBHOOK_USER": WEBHOOK_USER, "REACTOR_WEBHOOK_PASSWORD": WEBHOOK_PASSWORD}
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    web = start_reactor(env, "web", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
    return web, f"http://127.0.0.1:{port}"
