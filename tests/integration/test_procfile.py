"""The deploy path: the Procfile's own commands (gunicorn web, `reactor worker`) as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.local.redis_server import free_port
from tests.helpers import REPO, WEBHOOK_PASSWORD, WEBHOOK_USER, wait_for, worker_env
from tests.integration.helpers import exhausted_invoice, make_event, post_event

pytestmark = pytest.mark.integration


def procfile() -> dict[str, str]:
    lines = (REPO / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_procfile_declares_web_worker_and_cron():
    processes = procfile()
    assert set(processes) == {"web", "worker", "cron"}
    assert processes["web"].startswith("gunicorn ")


def test_the_procfile_processes_write_an_invoice_off(settings, sandbox, redis_conn, tmp_path: Path):
    port = free_port()
    env = worker_env(settings)
    env.update(
        PORT=str(port),
        REACTOR_WEBHOOK_USER=WEBHOOK_USER,
        REACTOR_WEBHOOK_PASSWORD=WEBHOOK_PASSWORD,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    procs = []
    try:
        for name, command in procfile().items():
            log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            procs.append((subprocess.Popen(command, shell=True, env=env, cwd=REPO, stdout=log, stderr=log,
                                           start_new_session=True), log))  # fmt: skip
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return requests.get(f"{url}/readyz", timeout=3).status_code == 200
            except requests.RequestException:  # not listening yet, or still importing the app
                return False

        wait_for(ready, timeout=20, what="gunicorn to answer /readyz")
        invoice = exhausted_invoice(sandbox)
        response = post_event(f"{url}/webhooks/chargebee", make_event(invoice))
        assert response.status_code == 200 and response.json()["status"] == "queued"
        wait_for(
            lambda: any(
                r.outcome == "written_off" for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"]))
            ),
            timeout=20,
            what="the write-off",
        )
        assert len(sandbox.state.write_off_calls()) == 1
        # Both processes log JSON lines that name the event and the invoice (docs/metrics.md).
        web_lines = [json.loads(line) for line in (tmp_path / "web.log").read_text().splitlines() if line[:1] == "{"]
        receipt = [line for line in web_lines if line.get("event_id") == response.json()["event_id"]]
        assert (
            receipt and receipt[0]["logger"] == "reactor.ingest.webhook" and receipt[0]["invoice_id"] == invoice["id"]
        )
        # The work horse logs its decision as it writes the audit record: the line may reach the file a
        # moment after the record is read back.
        wait_for(
            lambda: any(
                '"decision written_off' in line and invoice["id"] in line
                for line in (tmp_path / "worker.log").read_text().splitlines()
            ),
            timeout=20,
            what="the worker's decision line",
        )
        metrics = requests.get(f"{url}/metrics", timeout=5).text
        queued = 'reactor_events_received_total{event_type="payment_failed",outcome="queued",site="default"} 1.0'
        assert queued in metrics
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.close()
