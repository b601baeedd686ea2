"""Approvals, `recover`, the bad-debt register and the audit archive on a deployment of two Chargebee
sites (tests/integration/sites_helpers.py: `acme` on the `sandbox` fixture, `acme-eu` on a sandbox
process of its own, one real Redis): each lists or archives every site's data naming its site, and
acts on one invoice only when told whose it is."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rq import Queue

from reactor.cli import main
from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.jobs.held import HeldWriteOff, get_held, hold
from reactor.keys import Keys
from tests.helpers import wait_for, worker_env
from tests.integration.ops_helpers import cli_env, written_off
from tests.integration.sites_helpers import HOME, OTHER, TwoSites, load_two_sites, other_sandbox  # noqa: F401

pytestmark = pytest.mark.integration

AMBIGUOUS = f"several Chargebee sites are configured ({HOME}, {OTHER}): name one with --site"
PASSWORDS = {"root": "the admin's long password", "alice": "alice's long password"}


@pytest.fixture
def sites(settings, other_sandbox, redis_conn) -> TwoSites:  # noqa: F811
    return load_two_sites(settings, other_sandbox)


def run(sites: TwoSites, *args: str, user: str | None = None, stdin: str | None = None) -> Result:
    """`reactor ARGS...` with the two sites' environment; with `user`, as that user (`--user` and its
    password in REACTOR_USER_PASSWORD)."""
    env = {**cli_env(sites.settings), **sites.env}
    if user is not None:
        env["REACTOR_USER_PASSWORD"] = PASSWORDS[user]
        args = (*args, "--user", user)
    return CliRunner().invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)


@pytest.fixture
def users(sites) -> None:
    """An admin and an approver, the deployment's (every site's) users."""
    for name, role in (("root", "admin"), ("alice", "approver")):
        admin = "root" if name != "root" else None
        added = run(sites, "users", "add", name, "--role", role, "--password-stdin", user=admin, stdin=PASSWORDS[name])
        assert added.exit_code == 0, added.output


def waiting_on(sites: TwoSites, redis_conn, site: str, invoice_id: str, amount: int) -> None:
    """A write-off of `site` waiting for one approver, as a worker parks it."""
    event = {"id": f"ev_{site}", "event_type": "payment_failed", "content": {"invoice": {"id": invoice_id}}}
    item = HeldWriteOff(
        invoice_id,
        rule="dunning-exhausted",
        amount_due=amount,
        currency="USD",
        reason=f"waits for 1 approver on {site}",
        event=event,
        tier=1,
        approvers_needed=1,
    )
    hold(redis_conn, item, sites.site(site).key_prefix)


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.split("│") if cell.strip()]


def test_approvals_list_every_site_and_approve_needs_the_site(sites, users, redis_conn):
    waiting_on(sites, redis_conn, HOME, "inv_big", 50_000)
    waiting_on(sites, redis_conn, OTHER, "inv_big", 70_000)

    listed = run(sites, "approvals", "list")
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.output.splitlines() if "inv_big" in line]
    assert len(rows) == 2
    assert cells(rows[0])[:3] == [HOME, "inv_big", "500.00 USD"]
    assert cells(rows[1])[:3] == [OTHER, "inv_big", "700.00 USD"]
    assert "`reactor approvals approve --site SITE INVOICE --user NAME`" in listed.output
    only = run(sites, "approvals", "list", "--site", OTHER)
    assert [line for line in only.output.splitlines() if "inv_big" in line] == [rows[1]]

    refused = run(sites, "approvals", "approve", "inv_big", user="alice")
    assert refused.exit_code == 2 and AMBIGUOUS in refused.output
    declined = run(sites, "approvals", "decline", "inv_big", user="alice")
    assert declined.exit_code == 2 and AMBIGUOUS in declined.output

    approved = run(sites, "approvals", "approve", "--site", OTHER, "inv_big", user="alice")
    assert approved.exit_code == 0, approved.output
    assert "inv_big: approved by alice (1 of 1)" in approved.output and f"(site {OTHER})" in approved.output
    # acme-eu's write-off goes to acme-eu's queue, its record to acme-eu's trail; acme's still waits
    assert get_held(redis_conn, "inv_big", sites.site(OTHER).key_prefix) is None
    assert Queue(f"reactor:{OTHER}", connection=redis_conn).count == 1
    assert Queue("reactor", connection=redis_conn).count == 0
    other_trail = AuditLog(redis_conn, Keys(sites.site(OTHER).key_prefix).audit())
    [record] = other_trail.query(AuditFilter(invoice_id="inv_big"))
    assert record.outcome == "approved" and "alice" in (record.reason or record.detail or "")
    home = get_held(redis_conn, "inv_big", sites.site(HOME).key_prefix)
    assert home is not None and home.awaits_approval and home.approvals == ()
    home_trail = AuditLog(redis_conn, Keys(sites.site(HOME).key_prefix).audit()).query(AuditFilter())
    # the home site's trail holds the deployment's user changes (`users add`), and no approval
    assert [r.outcome for r in home_trail if r.outcome != "user_changed"] == []

    expired = run(sites, "approvals", "expire")
    assert expired.exit_code == 0 and f"0 approvals expired ({HOME}: 0, {OTHER}: 0)" in expired.output


def test_recover_needs_the_site_and_an_approver_once_users_exist(sites, users, redis_conn):
    ambiguous = run(sites, "recover", "inv_back", user="alice")
    assert ambiguous.exit_code == 2 and AMBIGUOUS in ambiguous.output

    nobody = run(sites, "recover", "--site", OTHER, "inv_back")
    assert nobody.exit_code == 1
    assert "to recover payments you must say who you are: give --user NAME" in nobody.output
    assert sites.other_sandbox.state.calls(method="POST") == []

    as_alice = run(sites, "recover", "--site", OTHER, "inv_back", user="alice")
    assert as_alice.exit_code == 1 and "who you are" not in as_alice.output
    assert "inv_back" in as_alice.output, "refused by the recovery itself: nothing of ours to recover"
    assert sites.other_sandbox.state.calls(method="POST") == []


def seed_register(sites: TwoSites, sandbox, redis_conn) -> None:
    """The same invoice id written off on both sites, each site's invoice of its own amount."""
    for site, server, total in ((HOME, sandbox, 1250), (OTHER, sites.other_sandbox, 4000)):
        server.state.add_customer(id="cus_1", preferred_currency_code="USD")
        server.state.add_invoice(
            id="inv_reg", customer_id="cus_1", currency_code="USD", status="paid", total=total, amount_due=0
        )
        trail = AuditLog(redis_conn, Keys(sites.site(site).key_prefix).audit())
        trail.append(written_off("inv_reg", f"ev_{site}", amount=total))


def test_the_bad_debt_register_names_each_rows_site_and_writes_nothing(sites, sandbox, redis_conn, nothing_written):
    seed_register(sites, sandbox, redis_conn)

    with nothing_written(ignore=lambda key: b":rl:" in key):
        result = run(sites, "report", "bad-debt", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["site"] == f"{HOME}, {OTHER}"
    assert [(row["site"], row["invoice_number"], row["total"]) for row in document["rows"]] == [
        (HOME, "inv_reg", "12.50"),
        (OTHER, "inv_reg", "40.00"),
    ]
    # each site's facts from its own Chargebee; none written to
    assert [c["path"] for c in sites.other_sandbox.state.calls(method="GET") if "inv_reg" in c["path"]]
    assert sites.other_sandbox.state.calls(method="POST") == []

    only = run(sites, "report", "bad-debt", "--site", OTHER, "--format", "csv")
    assert only.exit_code == 0, only.output
    lines = only.stdout.splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"{OTHER},") and "40.00" in lines[1]


def segments(root: Path) -> list[Path]:
    return sorted((root / "segments").iterdir())


def test_audit_archive_writes_each_sites_stream_to_its_own_archive(sites, redis_conn):
    for site, count in ((HOME, 3), (OTHER, 2)):
        trail = AuditLog(redis_conn, Keys(sites.site(site).key_prefix).audit())
        for n in range(count):
            trail.append(written_off(f"inv_{site}_{n}", f"ev_{site}_{n}"))
    root = sites.settings.var_dir / "audit-archive"

    archived = run(sites, "audit", "archive", "--flush")
    assert archived.exit_code == 0, archived.output
    assert f"site {HOME}: archived 3 records in 1 segment to {root}," in archived.output
    assert f"site {OTHER}: archived 2 records in 1 segment to {root}/sites/{OTHER}," in archived.output
    home_lines = gzip.decompress(segments(root)[0].read_bytes()).decode().splitlines()
    other_lines = gzip.decompress(segments(root / "sites" / OTHER)[0].read_bytes()).decode().splitlines()
    assert [json.loads(line)["event_id"] for line in home_lines] == [f"ev_{HOME}_{n}" for n in range(3)]
    assert [json.loads(line)["event_id"] for line in other_lines] == [f"ev_{OTHER}_{n}" for n in range(2)]

    verified = run(sites, "audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert f"site {HOME}: ok: 1 segment, 3 records" in verified.output
    assert f"site {OTHER}: ok: 1 segment, 2 records" in verified.output

    edited = segments(root / "sites" / OTHER)[0]
    edited.write_bytes(gzip.compress("\n".join(other_lines[:1]).encode() + b"\n"))
    broken = run(sites, "audit", "verify")
    assert broken.exit_code == 1, broken.output
    assert f"site {OTHER}: first broken: segments/{edited.name}" in broken.output
    assert f"site {HOME}: ok" in broken.output
    assert run(sites, "audit", "verify", "--site", HOME).exit_code == 0
    assert run(sites, "audit", "--site", OTHER, "verify").exit_code == 1, "the group's --site counts too"


def test_cron_archives_every_sites_stream_to_its_own_archive(sites, settings, redis_conn, start_reactor):
    env = {
        **worker_env(settings),
        **sites.env,
        "REACTOR_SWEEP_CRON": "",
        "REACTOR_AUDIT_SEGMENT_RECORDS": "2",
        "REACTOR_AUDIT_ARCHIVE_INTERVAL": "1",
    }
    start_reactor(env, "cron")
    root = sites.settings.var_dir / "audit-archive"
    for site in (HOME, OTHER):
        trail = AuditLog(redis_conn, Keys(sites.site(site).key_prefix).audit())
        for n in range(2):
            trail.append(written_off(f"inv_{n}", f"ev_{site}_{n}"))

    def archived(where: Path) -> list[str]:
        if not (where / "segments").is_dir():
            return []
        lines = [gzip.decompress(path.read_bytes()).decode().splitlines() for path in segments(where)]
        return [json.loads(line)["event_id"] for chunk in lines for line in chunk]

    wait_for(lambda: archived(root / "sites" / OTHER) and archived(root), timeout=30, what="cron archiving both")
    assert archived(root) == [f"ev_{HOME}_0", f"ev_{HOME}_1"]
    assert archived(root / "sites" / OTHER) == [f"ev_{OTHER}_0", f"ev_{OTHER}_1"]


def test_one_site_lists_no_site_column_and_recover_needs_an_approver_once_users_exist(settings, redis_conn):
    def one(*args: str, user: str | None = None, stdin: str | None = None) -> Result:
        env = dict(cli_env(settings))
        if user is not None:
            env["REACTOR_USER_PASSWORD"] = PASSWORDS[user]
            args = (*args, "--user", user)
        return CliRunner().invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)

    for name, role in (("root", "admin"), ("alice", "approver")):
        admin = "root" if name != "root" else None
        assert (
            one("users", "add", name, "--role", role, "--password-stdin", user=admin, stdin=PASSWORDS[name]).exit_code
            == 0
        )
    item = HeldWriteOff(
        "inv_one", rule="r", amount_due=500, currency="USD", reason="waits", event={}, approvers_needed=1, tier=1
    )
    hold(redis_conn, item)

    listed = one("approvals", "list")
    assert listed.exit_code == 0, listed.output
    assert [cells(line)[0] for line in listed.output.splitlines() if "inv_one" in line] == ["inv_one"]
    assert "site" not in listed.output and "`reactor approvals approve INVOICE --user NAME`" in listed.output
    assert one("approvals", "expire").output.strip() == "0 approvals expired"

    nobody = one("recover", "inv_one")
    assert nobody.exit_code == 1 and "to recover payments you must say who you are" in nobody.output
    as_alice = one("recover", "inv_one", user="alice")
    assert as_alice.exit_code == 1 and "who you are" not in as_alice.output
