"""`reactor run --sandbox-sites demo-eu,demo-us`: two sandbox sites, each its own port, API key and
demo invoices (the same ids on both), served by one reactor; the README's example event, posted to
each site's webhook with that site's credentials, writes the demo invoice off on each site once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from reactor.local.redis_server import free_port
from reactor.local.supervisor import DEV_WEBHOOK_PASSWORD, DEV_WEBHOOK_USER
from reactor.sandbox import DEMO_API_KEY
from tests.helpers import REPO, wait_for
from tests.integration.ops_helpers import kill_run, listening, printed_sandboxes, reactor_run, run_env

pytestmark = pytest.mark.integration


def test_reactor_run_serves_two_sandbox_sites(tmp_path: Path):
    port, sandbox_port = free_port(), free_port()
    proc = reactor_run(tmp_path, port, sandbox_port, "run", "--sandbox-sites", "demo-eu,demo-us")
    output = tmp_path / "run.log"
    try:
        wait_for(lambda: "Ready." in output.read_text(), timeout=60, what="`reactor run` to say Ready")
        wait_for(lambda: listening(port), timeout=30, what="gunicorn to listen")
        bases = printed_sandboxes(output.read_text())
        assert set(bases) == {"demo-eu", "demo-us"} and bases["demo-eu"] != bases["demo-us"]
        body = (REPO / "examples" / "payment_failed_exhausted.json").read_bytes()
        headers = {"Content-Type": "application/json"}
        home = f"http://127.0.0.1:{port}/webhooks/chargebee"
        us = f"{home}/demo-us"
        us_auth = (f"{DEV_WEBHOOK_USER}-demo-us", f"{DEV_WEBHOOK_PASSWORD}-demo-us")
        assert (
            requests.post(us, data=body, headers=headers, auth=(DEV_WEBHOOK_USER, DEV_WEBHOOK_PASSWORD)).status_code
            == 401
        )
        eu = requests.post(home, data=body, headers=headers, auth=(DEV_WEBHOOK_USER, DEV_WEBHOOK_PASSWORD), timeout=10)
        assert eu.json()["status"] == "queued"
        assert requests.post(us, data=body, headers=headers, auth=us_auth, timeout=10).json()["status"] == "queued"

        def invoice(site: str) -> dict:
            key = f"{DEMO_API_KEY}_{site.replace('-', '_')}"
            answer = requests.get(f"{bases[site]}/invoices/inv_demo_1001", auth=(key, ""), timeout=5)
            return answer.json()["invoice"]

        wait_for(lambda: invoice("demo-eu")["status"] == "paid", timeout=30, what="demo-eu's write-off")
        wait_for(lambda: invoice("demo-us")["status"] == "paid", timeout=30, what="demo-us's write-off")
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        kill_run(proc)


def test_sandbox_sites_are_refused_with_a_configured_chargebee(tmp_path: Path):
    env = run_env(tmp_path, "refused")
    env.update(CHARGEBEE_API_BASE="http://127.0.0.1:1/api/v2", CHARGEBEE_API_KEY="k", REDIS_URL="redis://127.0.0.1:1/0")
    env.update(REACTOR_WEBHOOK_USER="u", REACTOR_WEBHOOK_PASSWORD="p")
    command = [sys.executable, "-m", "reactor", "run", "--port", str(free_port()), "--sandbox-sites", "demo-eu,demo-us"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 78, done.stderr
    assert "--sandbox-sites" in done.stderr and "only when none is configured" in done.stderr
