"""`reactor cron` with two Chargebee sites, as a real process: each site's audit stream goes to that
site's archive (the home site's at the root, acme-eu's under sites/acme-eu), a site whose archive
cannot be written stops none of the others, and stale approvals lapse on every site without
REACTOR_NOTIFY_URL. /readyz reports each site's held write-offs and archive lag."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from reactor.console.archiving import audit_archive
from reactor.jobs.audit import AuditFilter, AuditLog, AuditRecord
from reactor.jobs.held import HeldWriteOff, get_held, hold
from reactor.keys import Keys
from tests.helpers import WebServer, wait_for, worker_env
from tests.integration.sites_helpers import HOME, OTHER, TwoSites, load_two_sites, other_sandbox  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture
def sites(settings, other_sandbox, redis_conn, tmp_path: Path) -> TwoSites:  # noqa: F811
    loaded = load_two_sites(settings, other_sandbox)
    loaded.settings = loaded.settings.with_overrides(
        audit_archive=str(tmp_path / "archive"), audit_segment_records=10, audit_archive_interval=1
    )
    return loaded


def cron_env(sites: TwoSites) -> dict[str, str]:
    settings = sites.settings
    env = {**worker_env(settings), **sites.env}
    env.pop("REACTOR_NOTIFY_URL", None)
    env.update(
        REACTOR_AUDIT_ARCHIVE=settings.audit_archive or "",
        REACTOR_AUDIT_SEGMENT_RECORDS="10",
        REACTOR_AUDIT_ARCHIVE_INTERVAL="1",
        REACTOR_SWEEP_CRON="",
    )
    return env


def write(connection, sites: TwoSites, site: str, count: int) -> None:
    log = AuditLog(connection, Keys(sites.site(site).key_prefix).audit())
    for n in range(count):
        log.append(AuditRecord(event_id=f"ev_{site}_{n}", invoice_id=f"inv_{n}", outcome="no_match", currency="EUR"))


def test_cron_archives_every_site_into_its_own_archive(sites, redis_conn, start_reactor):
    write(redis_conn, sites, HOME, 25)
    write(redis_conn, sites, OTHER, 35)
    start_reactor(cron_env(sites), "cron")
    home, other = (audit_archive(sites.site(name), redis_conn) for name in (HOME, OTHER))
    assert other.url == f"{sites.settings.audit_archive}/sites/{OTHER}"
    wait_for(lambda: home.state().archived >= 20 and other.state().archived >= 30, timeout=30, what="both archived")
    home_events = {fields["event_id"] for _s, _id, fields in home.records()}
    other_events = {fields["event_id"] for _s, _id, fields in other.records()}
    assert home_events and all(e.startswith(f"ev_{HOME}_") for e in home_events)
    assert other_events and all(e.startswith(f"ev_{OTHER}_") for e in other_events)


def test_a_site_whose_archive_fails_stops_none_of_the_others(sites, redis_conn, start_reactor):
    root = Path(sites.settings.audit_archive or "")
    root.mkdir(parents=True)
    (root / "sites").write_text("not a directory")  # acme-eu's archive cannot be written
    write(redis_conn, sites, OTHER, 15)
    write(redis_conn, sites, HOME, 15)
    cron = start_reactor(cron_env(sites), "cron")
    home = audit_archive(sites.site(HOME), redis_conn)
    wait_for(lambda: home.state().archived >= 10, timeout=30, what="the home site archived")
    wait_for(lambda: "audit archive unreachable" in cron.output(), timeout=30, what="acme-eu's failure logged")
    assert redis_conn.xlen(Keys(sites.site(OTHER).key_prefix).audit()) == 15  # nothing trimmed


def test_cron_lets_stale_approvals_lapse_on_every_site_without_notify(sites, redis_conn, start_reactor):
    old = {"user": "alice", "at": (datetime.now(timezone.utc) - timedelta(days=8)).isoformat()}
    for name in (HOME, OTHER):
        item = HeldWriteOff(
            "inv_big", "ev_big", "big", 500000, "EUR", datetime.now(timezone.utc).isoformat(), "awaits approval",
            {"id": "ev_big"}, tier=2, approvers_needed=2, approvals=(old,),
        )  # fmt: skip
        hold(redis_conn, item, sites.site(name).key_prefix)
    start_reactor(cron_env(sites), "cron")

    def lapsed(name: str) -> bool:
        trail = AuditLog(redis_conn, Keys(sites.site(name).key_prefix).audit())
        return [str(r.outcome) for r in trail.query(AuditFilter(invoice_id="inv_big"))] == ["approval_expired"]

    wait_for(lambda: lapsed(HOME) and lapsed(OTHER), timeout=30, what="approvals lapsed on both sites")
    for name in (HOME, OTHER):
        assert get_held(redis_conn, "inv_big", sites.site(name).key_prefix).approvals == ()


def test_readyz_reports_each_sites_held_and_archive(sites, redis_conn):
    hold(redis_conn, HeldWriteOff("inv_h", reason="budget"), sites.site(OTHER).key_prefix)
    write(redis_conn, sites, HOME, 3)
    server = WebServer(sites.settings)
    try:
        checks = requests.get(f"{server.url}/readyz", timeout=5).json()["checks"]
    finally:
        server.stop()
    assert checks["held"][OTHER]["count"] == 1 and checks["held"][HOME]["count"] == 0
    assert set(checks["audit_archive"]) == {HOME, OTHER}
    assert checks["audit_archive"][HOME]["waiting"] == 3
