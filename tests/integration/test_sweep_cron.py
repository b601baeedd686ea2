"""`reactor cron`: RQ's cron scheduler enqueues the sweep on schedule and workers run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from reactor.jobs.audit import AuditFilter, AuditLog
from tests.helpers import REPO, wait_for, worker_env
from tests.integration.helpers import exhausted_invoice

pytestmark = pytest.mark.integration

SWEEP_RULES = """\
version: 1
mode: live
rules:
  - name: swept-dunning-exhausted
    on: [sweep]
    when:
      - invoice.dunning_status: exhausted
      - invoice.amount_due: {lte: {USD: 25}}
    action: write_off
"""


def written_off(redis_conn, invoice_id: str) -> bool:
    return any(r.outcome == "written_off" for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice_id)))


def test_the_scheduled_sweep_writes_off_matching_invoices_no_webhook_announced(
    sandbox, redis_conn, settings, rules_file, start_worker, tmp_path
):
    rules_file(SWEEP_RULES)
    small = [exhausted_invoice(sandbox) for _ in range(2)]
    large = exhausted_invoice(sandbox, amount_due=9900, total=9900)
    start_worker()
    env = {**worker_env(settings), "REACTOR_SWEEP_INTERVAL": "2"}
    with open(tmp_path / "cron.log", "wb") as log:
        cron = subprocess.Popen([sys.executable, "-m", "reactor", "cron"], env=env, cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            for invoice in small:
                wait_for(lambda i=invoice: written_off(redis_conn, i["id"]), timeout=30, what="a swept write-off")
        finally:
            os.killpg(cron.pid, signal.SIGTERM)
            cron.wait(10)
    assert "sweeping unpaid invoices every 2 s" in (tmp_path / "cron.log").read_text()
    assert not written_off(redis_conn, large["id"])
    assert sandbox.state.get_invoice(large["id"])["status"] == "not_paid"
    assert len(sandbox.state.write_off_calls()) == 2
    assert sandbox.state.calls(path_contains="/invoices", method="GET")[0]["query"]["status[in]"]
