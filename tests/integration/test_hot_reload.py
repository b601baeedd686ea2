"""Editing rules.yaml under running processes: a real `reactor worker` (fork per job) and the web
under gunicorn with two worker processes pick up a good edit without a restart, refuse a broken one
(keeping the last good rules), and say so on /readyz and /metrics."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.local.redis_server import free_port
from reactor.rules import load_rules
from tests.helpers import REPO, RULES, wait_for, worker_env
from tests.integration.helpers import exhausted_invoice, make_event, post_event

pytestmark = pytest.mark.integration

HOLD_ALL = RULES.format(mode="live").replace(
    "rules:\n",
    "rules:\n  - name: hold-everything\n    when:\n      - invoice.amount_due: {gt: 0}\n    action: skip\n",
)
BROKEN = RULES.format(mode="live").replace("action: write_off", "action: write_of")


def decided(redis_conn, invoice_id: str) -> tuple[str | None, str, str | None]:
    record = wait_for(
        lambda: next(
            (r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice_id)) if r.outcome != "decided"),
            None,
        ),
        timeout=30,
        what=f"a decision on {invoice_id}",
    )
    return record.rule, record.outcome, record.rules_version


def broken_line_col(path: Path) -> str:
    """Where the loader must point: the misspelt action's value."""
    line, text = next((n, t) for n, t in enumerate(path.read_text().splitlines(), 1) if "action: write_of" in t)
    return f"{path}:{line}:{text.index('write_of') + 1}: "


def test_an_edit_under_a_running_worker_decides_the_next_event(sandbox, web, redis_conn, start_worker, rules_file):
    original = load_rules(rules_file()).version
    start_worker()
    first = exhausted_invoice(sandbox)
    post_event(web.webhook_url, make_event(first))
    assert decided(redis_conn, first["id"]) == ("dunning-exhausted-small-balance", "written_off", original)

    edited = rules_file(HOLD_ALL)
    second = exhausted_invoice(sandbox)
    post_event(web.webhook_url, make_event(second))

    assert decided(redis_conn, second["id"]) == ("hold-everything", "skipped", load_rules(edited).version)
    assert sandbox.state.get_invoice(second["id"])["status"] == "not_paid"


def test_a_broken_edit_keeps_the_old_rules_in_the_worker_and_shows_on_readyz_and_metrics(
    sandbox, web, redis_conn, start_worker, rules_file
):
    original = load_rules(rules_file()).version
    worker = start_worker()
    warm = exhausted_invoice(sandbox)
    post_event(web.webhook_url, make_event(warm))
    decided(redis_conn, warm["id"])  # the worker is up and has read the good rules

    path = rules_file(BROKEN)
    invoice = exhausted_invoice(sandbox)
    post_event(web.webhook_url, make_event(invoice))

    assert decided(redis_conn, invoice["id"]) == ("dunning-exhausted-small-balance", "written_off", original)
    wait_for(lambda: "rules edit refused" in worker.output(), what="the refusal in the worker's log")
    assert broken_line_col(path) in worker.output()
    ready = requests.get(f"{web.url}/readyz", timeout=5)
    assert ready.status_code == 200
    rules = ready.json()["checks"]["rules"]
    assert rules["version"] == original
    # Position and kind only: the file's own words are for `reactor rules check` and the logs.
    assert rules["errors"] == [broken_line_col(path) + "invalid value"]
    metrics = requests.get(f"{web.url}/metrics", timeout=5).text
    assert 'reactor_rules_reloads_total{outcome="refused"} 1.0' in metrics  # web and worker saw one edit
    assert "reactor_rules_refused 1.0" in metrics


class Gunicorn:
    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.log_path = log_path
        env = {**env, "PORT": str(self.port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": "2"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:reactor.gunicorn_conf", "reactor.web:create_app()"],
            env=env,
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except requests.RequestException:  # not listening yet, or a worker still booting (a read timeout)
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def gunicorn(settings, tmp_path) -> Iterator[Gunicorn]:
    env = worker_env(settings)
    env.update(REACTOR_WEBHOOK_USER=settings.webhook_user, REACTOR_WEBHOOK_PASSWORD=settings.webhook_password)
    server = Gunicorn(env, tmp_path / "gunicorn.log")
    wait_for(server.ready, timeout=30, what=f"gunicorn ready; log: {server.log_path}")
    yield server
    server.stop()


def rules_seen(server: Gunicorn, requests_count: int = 12) -> list[tuple[str, int]]:
    """(version, number of errors) from many /readyz answers, spread over gunicorn's processes."""
    seen = []
    for _ in range(requests_count):
        rules = requests.get(f"{server.url}/readyz", timeout=5).json()["checks"]["rules"]
        seen.append((rules["version"], len(rules["errors"])))
    return seen


def test_gunicorn_web_processes_reload_a_good_edit_and_refuse_a_broken_one(gunicorn, rules_file, redis_conn):
    original = load_rules(rules_file()).version
    assert set(rules_seen(gunicorn)) == {(original, 0)}

    path = rules_file(BROKEN)
    wait_for(lambda: set(rules_seen(gunicorn)) == {(original, 1)}, what="every web process refusing the edit")
    errors = requests.get(f"{gunicorn.url}/readyz", timeout=5).json()["checks"]["rules"]["errors"]
    assert errors[0].startswith(broken_line_col(path))
    metrics = requests.get(f"{gunicorn.url}/metrics", timeout=5).text
    assert 'reactor_rules_reloads_total{outcome="refused"} 1.0' in metrics  # one edit, not one per process

    fixed = load_rules(rules_file(HOLD_ALL)).version
    wait_for(lambda: set(rules_seen(gunicorn)) == {(fixed, 0)}, what="every web process on the fixed rules")
    metrics = requests.get(f"{gunicorn.url}/metrics", timeout=5).text
    assert re.search(rf'reactor_rules_info\{{mode="live",version="{fixed}"\}} 1\.0', metrics)
    assert 'reactor_rules_reloads_total{outcome="accepted"} 1.0' in metrics
