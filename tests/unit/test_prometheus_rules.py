"""deploy/prometheus/alerts.yml: valid for Prometheus (`promtool check rules`), each alert firing on
the series it is for and quiet before (`promtool test rules` with alerts_test.yml), and on metric
names /metrics exports (docs/metrics.md lists them). promtool is Debian's `prometheus` package,
which scripts/test.sh installs when it can."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus; scripts/test.sh does it as root)"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120)


@needs_promtool
def test_promtool_checks_the_alerting_rules():
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_alerting_rules_pass():
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_is_tested_and_reads_documented_metrics():
    rules = (RULES_DIR / "alerts.yml").read_text(encoding="utf-8")
    tests = (RULES_DIR / "alerts_test.yml").read_text(encoding="utf-8")
    documented = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")

    alerts = re.findall(r"^\s+- alert: (\w+)$", rules, re.MULTILINE)
    assert len(alerts) == 10
    assert [a for a in alerts if f"alertname: {a}\n" not in tests] == []
    metrics = {re.sub(r"_total$", "", m) for m in re.findall(r"\breactor_[a-z0-9_]+", rules)}
    assert (
        metrics
        and [m for m in sorted(metrics) if f"`{m}`" not in documented and f"`{m}_total`" not in documented] == []
    )
