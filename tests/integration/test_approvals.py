"""Four eyes on real processes: rules.yaml approval tiers (USD 100 → 1 approver, USD 1000 → 2), real
webhooks, a real worker, the sandbox over HTTP, and named users acting through `reactor approvals`
with their passwords. Proves: small write-offs go through alone; larger ones wait for distinct
approvers and are written off once; a decline leaves the invoice unpaid; a viewer cannot approve; an
invoice paid meanwhile is not written off; the audit trail and `reactor trace` name each approver."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace

import pytest
import requests

from reactor.console.users import UserStore
from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.jobs.held import get_held
from reactor.web import create_app
from tests.helpers import wait_for, worker_env
from tests.integration.helpers import ADMIN_PASSWORD, ADMIN_USER, make_event, outcomes, post_event, token

pytestmark = pytest.mark.integration

TIERED_RULES = """\
version: 1
mode: live
limits:
  max_write_off: {USD: 10000}
approvals:
  - above: {USD: 100, EUR: 90}
    approvers: 1
  - above: {USD: 1000, EUR: 900}
    approvers: 2
rules:
  - name: dunning-exhausted
    when:
      - invoice.dunning_status: exhausted
    action: write_off
"""

PASSWORDS = {
    "root": "the admin's long password",
    "alice": "alice's long password",
    "bob": "bob's long password!",
    "victor": "victor's long password",
}


def reactor(
    settings, *args: str, password: str | None = None, stdin: str = "", extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m reactor ARGS` as its own process; `password` goes in REACTOR_USER_PASSWORD."""
    env = {**worker_env(settings), **(extra_env or {})}
    if password is not None:
        env["REACTOR_USER_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "reactor", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def as_user(settings, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return reactor(settings, *args, "--user", name, password=PASSWORDS[name])


@pytest.fixture
def tiered(settings, sandbox, web, redis_conn, start_worker, rules_file):
    """The tiers in force, users alice and bob (approvers) and victor (a viewer), a worker running;
    `tiered(amount_in_cents)` posts an exhausted invoice's event and returns the invoice."""
    rules_file(TIERED_RULES)
    for name, role in (("root", "admin"), ("alice", "approver"), ("bob", "approver"), ("victor", "viewer")):
        admin = () if name == "root" else ("--user", "root")
        added = reactor(
            settings, "users", "add", name, "--role", role, "--password-stdin", *admin,
            stdin=PASSWORDS[name] + "\n", password=PASSWORDS["root"],
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    start_worker()

    def post(amount: int) -> dict:
        invoice = sandbox.state.add_invoice(
            status="not_paid", dunning_status="exhausted", currency_code="USD", total=amount, amount_due=amount
        )
        assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
        return invoice

    return post


def settled(redis_conn, invoice_id: str, outcome: str, count: int = 1) -> None:
    wait_for(lambda: outcomes(redis_conn, invoice_id).count(outcome) >= count, what=f"{invoice_id}: {outcome}")


def write_offs(sandbox, invoice_id: str) -> int:
    return sum(1 for c in sandbox.state.write_off_calls() if invoice_id in c["path"])


def records(redis_conn, invoice_id: str, outcome: str) -> list:
    return [r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice_id)) if r.outcome == outcome]


def test_a_write_off_under_the_first_tier_needs_nobody(tiered, redis_conn, sandbox, settings):
    invoice = tiered(5000)  # $50
    settled(redis_conn, invoice["id"], "written_off")
    assert "awaits_approval" not in outcomes(redis_conn, invoice["id"])
    assert write_offs(sandbox, invoice["id"]) == 1


def test_one_approval_writes_off_a_tier_one_write_off_once(tiered, redis_conn, sandbox, settings):
    invoice = tiered(50000)  # $500
    settled(redis_conn, invoice["id"], "awaits_approval")
    assert write_offs(sandbox, invoice["id"]) == 0
    listed = reactor(settings, "approvals", "list")
    assert invoice["id"] in listed.stdout and "500.00 USD" in listed.stdout and "1 (0 of 1)" in listed.stdout

    done = as_user(settings, "alice", "approvals", "approve", invoice["id"])

    assert done.returncode == 0, done.stderr
    assert "approved by alice (1 of 1)" in done.stdout
    settled(redis_conn, invoice["id"], "written_off")
    assert write_offs(sandbox, invoice["id"]) == 1
    assert get_held(redis_conn, invoice["id"], settings.key_prefix) is None
    again = as_user(settings, "bob", "approvals", "approve", invoice["id"])
    assert again.returncode == 1 and "not in the approvals queue" in again.stderr
    [approved] = records(redis_conn, invoice["id"], "approved")
    assert approved.reason.startswith("by alice (1 of 1 for tier 1)") and approved.at


def test_a_tier_two_write_off_needs_two_different_approvers(tiered, redis_conn, sandbox, settings):
    invoice = tiered(500000)  # $5,000
    settled(redis_conn, invoice["id"], "awaits_approval")

    first = as_user(settings, "alice", "approvals", "approve", invoice["id"])
    assert first.returncode == 0, first.stderr
    assert "it waits for 1 more approver" in first.stdout
    held = get_held(redis_conn, invoice["id"], settings.key_prefix)
    assert held is not None and held.approvers == ["alice"] and held.tier == 2
    twice = as_user(settings, "alice", "approvals", "approve", invoice["id"])
    assert twice.returncode == 1
    assert "alice has already approved" in twice.stderr and "counts once" in twice.stderr
    assert write_offs(sandbox, invoice["id"]) == 0 and "written_off" not in outcomes(redis_conn, invoice["id"])

    second = as_user(settings, "bob", "approvals", "approve", invoice["id"])

    assert second.returncode == 0, second.stderr
    settled(redis_conn, invoice["id"], "written_off")
    assert write_offs(sandbox, invoice["id"]) == 1
    reasons = [r.reason for r in records(redis_conn, invoice["id"], "approved")]
    assert [r.split(";")[0] for r in reasons] == ["by alice (1 of 2 for tier 2)", "by bob (2 of 2 for tier 2)"]
    [written] = records(redis_conn, invoice["id"], "written_off")
    assert re.search(r"approved_by=alice@\S+,bob@\S+$", written.detail or "")
    trace = reactor(settings, "trace", invoice["id"])
    assert trace.returncode == 0, trace.stderr
    assert "by alice (1 of 2" in trace.stdout and "by bob (2 of 2" in trace.stdout


def test_a_decline_leaves_the_invoice_unpaid_and_recorded(tiered, redis_conn, sandbox, settings, web):
    invoice = tiered(60000)
    settled(redis_conn, invoice["id"], "awaits_approval")

    declined = as_user(settings, "bob", "approvals", "decline", invoice["id"], "--reason", "customer in talks")

    assert declined.returncode == 0, declined.stderr
    [record] = records(redis_conn, invoice["id"], "declined")
    assert record.reason == "by bob: customer in talks"
    late = as_user(settings, "alice", "approvals", "approve", invoice["id"])
    assert late.returncode == 1 and "was declined by bob" in late.stderr
    # another event about it: still held for people, not queued for approval again
    again = sandbox.state.update_invoice(invoice["id"], dunning_status="exhausted")  # a newer resource_version
    assert post_event(web.webhook_url, make_event(again)).status_code == 200
    settled(redis_conn, invoice["id"], "held")
    assert write_offs(sandbox, invoice["id"]) == 0
    assert sandbox.state.get_invoice(invoice["id"])["status"] == "not_paid"
    assert get_held(redis_conn, invoice["id"], settings.key_prefix).declined["user"] == "bob"


def test_a_viewer_or_nobody_cannot_approve(tiered, redis_conn, sandbox, settings):
    invoice = tiered(50000)
    settled(redis_conn, invoice["id"], "awaits_approval")

    viewer = as_user(settings, "victor", "approvals", "approve", invoice["id"])
    nobody = reactor(settings, "approvals", "approve", invoice["id"])
    wrong = reactor(settings, "approvals", "approve", invoice["id"], "--user", "alice", password="not hers at all")
    release = reactor(settings, "held", "release", invoice["id"])

    assert (
        viewer.returncode == 1
        and "victor has the role viewer: only an approver or an admin may approve" in viewer.stderr
    )
    assert nobody.returncode == 1 and "you must say who you are: give --user NAME" in nobody.stderr
    assert wrong.returncode == 1 and "wrong user name or password" in wrong.stderr
    assert release.returncode == 1 and "you must say who you are" in release.stderr
    assert get_held(redis_conn, invoice["id"], settings.key_prefix).approvals == ()
    assert records(redis_conn, invoice["id"], "approved") == [] and write_offs(sandbox, invoice["id"]) == 0


def test_an_invoice_paid_meanwhile_is_not_written_off_on_approval(tiered, redis_conn, sandbox, settings):
    invoice = tiered(70000)
    settled(redis_conn, invoice["id"], "awaits_approval")
    sandbox.state.update_invoice(invoice["id"], status="paid", amount_due=0, amount_paid=70000)

    done = as_user(settings, "alice", "approvals", "approve", invoice["id"])

    assert done.returncode == 0, done.stderr
    settled(redis_conn, invoice["id"], "changed")
    assert write_offs(sandbox, invoice["id"]) == 0
    assert "written_off" not in outcomes(redis_conn, invoice["id"])


def test_an_amount_risen_into_the_next_tier_waits_for_it(tiered, redis_conn, sandbox, settings):
    invoice = tiered(50000)
    settled(redis_conn, invoice["id"], "awaits_approval")
    sandbox.state.update_invoice(invoice["id"], amount_due=200000, total=200000)

    done = as_user(settings, "alice", "approvals", "approve", invoice["id"])

    assert done.returncode == 0, done.stderr
    settled(redis_conn, invoice["id"], "awaits_approval", count=2)
    held = get_held(redis_conn, invoice["id"], settings.key_prefix)
    assert held is not None and held.tier == 2 and held.approvers == [] and held.amount_due == 200000
    assert write_offs(sandbox, invoice["id"]) == 0


def log_in_as(server, name: str) -> requests.Session:
    browser = requests.Session()
    form = browser.get(f"{server.url}/admin/login", timeout=5)
    answer = browser.post(
        f"{server.url}/admin/login",
        data={"user": name, "password": PASSWORDS[name], "csrf": token(form.text)},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    return browser


def test_the_dashboard_queue_approves_as_the_logged_in_approver_and_refuses_a_viewer(
    tiered, redis_conn, sandbox, settings, admin_web
):
    invoice = tiered(50000)
    settled(redis_conn, invoice["id"], "awaits_approval")
    approve_url = f"{admin_web.url}/admin/approvals/{invoice['id']}/approve"

    viewer = log_in_as(admin_web, "victor")
    page = viewer.get(f"{admin_web.url}/admin/approvals", timeout=5)
    assert page.status_code == 200 and invoice["id"] in page.text and "500.00 USD" in page.text
    assert f'href="/admin/invoices/{invoice["id"]}"' in page.text and "Approve</button>" not in page.text
    refused = viewer.post(approve_url, data={"csrf": token(page.text)}, timeout=5)
    assert refused.status_code == 403 and "victor has the role viewer" in refused.text
    assert records(redis_conn, invoice["id"], "approved") == []

    approver = log_in_as(admin_web, "alice")
    page = approver.get(f"{admin_web.url}/admin/approvals", timeout=5)
    no_token = approver.post(approve_url, data={}, timeout=5)
    assert no_token.status_code == 400
    done = approver.post(approve_url, data={"csrf": token(page.text), "reason": "checked the contract"}, timeout=5)

    assert done.status_code == 200 and "approved by alice (1 of 1)" in done.text
    settled(redis_conn, invoice["id"], "written_off")
    assert write_offs(sandbox, invoice["id"]) == 1
    [approved] = records(redis_conn, invoice["id"], "approved")
    assert approved.reason.startswith("by alice (1 of 1 for tier 1): checked the contract")


def test_a_removed_user_is_logged_out_at_the_next_request(tiered, settings, admin_web):
    browser = log_in_as(admin_web, "bob")
    assert browser.get(f"{admin_web.url}/admin/approvals", timeout=5, allow_redirects=False).status_code == 200
    removed = reactor(settings, "users", "remove", "bob", "--user", "root", password=PASSWORDS["root"])
    assert removed.returncode == 0, removed.stderr
    after = browser.get(f"{admin_web.url}/admin/approvals", timeout=5, allow_redirects=False)
    assert after.status_code == 302 and "/admin/login" in after.headers["Location"]


def test_a_declined_write_off_released_waits_again_and_the_releaser_does_not_count(
    tiered, redis_conn, sandbox, settings
):
    invoice = tiered(60000)
    settled(redis_conn, invoice["id"], "awaits_approval")
    assert as_user(settings, "bob", "approvals", "decline", invoice["id"]).returncode == 0

    released = as_user(settings, "alice", "held", "release", invoice["id"], "--reason", "talks failed")

    assert released.returncode == 0, released.stderr
    settled(redis_conn, invoice["id"], "awaits_approval", count=2)
    held = get_held(redis_conn, invoice["id"], settings.key_prefix)
    assert held is not None and held.awaits_approval and held.not_counted == ("alice",)
    own = as_user(settings, "alice", "approvals", "approve", invoice["id"])
    assert own.returncode == 1 and "alice released or undid the write-off" in own.stderr
    assert as_user(settings, "bob", "approvals", "approve", invoice["id"]).returncode == 0
    settled(redis_conn, invoice["id"], "written_off")
    assert write_offs(sandbox, invoice["id"]) == 1
    [record] = records(redis_conn, invoice["id"], "released")
    assert record.reason == "by alice: talks failed"


def test_failed_logins_are_limited_per_user_across_addresses_and_sessions_expire_when_idle(admin_settings, redis_conn):
    settings = replace(admin_settings, session_idle=60)
    UserStore(redis_conn, settings).add("alice", "approver", PASSWORDS["alice"])
    app = create_app(settings, redis_conn)

    def attempt(address: str, password: str):
        client = app.test_client()
        form = client.get("/admin/login", environ_base={"REMOTE_ADDR": address})
        data = {"user": "alice", "password": password, "csrf": token(form.get_data(as_text=True))}
        return client, client.post("/admin/login", data=data, environ_base={"REMOTE_ADDR": address})

    statuses = [attempt(f"10.0.0.{i}", "wrong password here")[1].status_code for i in range(11)]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429  # ten addresses, one name
    _, late = attempt("10.0.1.1", PASSWORDS["alice"])
    assert late.status_code == 429 and "for this user" in late.get_data(as_text=True)
    redis_conn.delete(*redis_conn.keys("reactor:admin:*login-user*"))

    client, answer = attempt("10.0.2.1", PASSWORDS["alice"])
    assert answer.status_code == 302
    [key] = redis_conn.keys("reactor:admin:session:*")
    assert 0 < redis_conn.ttl(key) <= 60  # REACTOR_SESSION_IDLE, not the 12 hours
    redis_conn.expire(key, 1)
    wait_for(lambda: not redis_conn.exists(key), what="the idle session gone")
    assert client.get("/admin/approvals", environ_base={"REMOTE_ADDR": "10.0.2.1"}).status_code == 302


def test_changing_users_needs_an_admin_once_users_exist(settings, redis_conn):
    def add(name: str, role: str, *who: str, password: str | None = None):
        return reactor(settings, "users", "add", name, "--role", role, "--password-stdin", *who,
                       stdin=PASSWORDS.get(name, "a long password for x") + "\n", password=password)  # fmt: skip

    first = add("alice", "approver")
    assert first.returncode == 1 and "the first user must be an admin" in first.stderr
    assert add("root", "admin").returncode == 0
    nobody = add("alice", "approver")
    assert nobody.returncode == 1 and "give --user NAME of an admin" in nobody.stderr
    assert add("alice", "approver", "--user", "root", password=PASSWORDS["root"]).returncode == 0
    by_approver = add("bob", "approver", "--user", "alice", password=PASSWORDS["alice"])
    assert (
        by_approver.returncode == 1
        and "alice has the role approver: only an admin may change users" in by_approver.stderr
    )
    own = reactor(settings, "users", "passwd", "alice", "--password-stdin", "--user", "alice",
                  stdin="alice's new long password\n", password=PASSWORDS["alice"])  # fmt: skip
    assert own.returncode == 0, own.stderr
    listed = reactor(settings, "users", "list")
    assert re.search(r"alice\s+.*approver", listed.stdout) and re.search(r"root\s+.*admin", listed.stdout)
    assert UserStore(redis_conn, settings).authenticate("alice", "alice's new long password") is not None


def user_changes(redis_conn) -> list:
    return [r for r in AuditLog(redis_conn).query(AuditFilter()) if r.outcome == "user_changed"]


def test_every_user_change_is_in_the_audit_trail_with_who_and_no_secret(settings, redis_conn):
    def add(name: str, role: str, *who: str):
        return reactor(settings, "users", "add", name, "--role", role, "--password-stdin", *who,
                       stdin=PASSWORDS[name] + "\n", password=PASSWORDS["root"])  # fmt: skip

    assert add("root", "admin").returncode == 0
    assert add("alice", "approver", "--user", "root").returncode == 0
    promoted = reactor(settings, "users", "passwd", "alice", "--role", "admin", "--password-stdin", "--user", "root",
                       stdin="alice's newer long password\n", password=PASSWORDS["root"])  # fmt: skip
    assert promoted.returncode == 0, promoted.stderr
    assert reactor(settings, "users", "remove", "alice", "--user", "root", password=PASSWORDS["root"]).returncode == 0

    first, added, changed, removed = user_changes(redis_conn)
    assert re.fullmatch(r"by \S+@\S+: added root with the role admin", first.reason) and first.detail == "user root"
    assert added.reason == "by root: added alice with the role approver" and added.detail == "user alice"
    assert changed.reason == "by root: password changed for alice; role approver -> admin"
    assert removed.reason == "by root: removed alice (role admin)" and removed.detail == "user alice"
    stored = str([r.to_fields() for r in user_changes(redis_conn)])
    assert "password" not in stored.replace("password changed", "") and "argon2" not in stored
    assert not any(secret in stored for secret in (*PASSWORDS.values(), "alice's newer long password"))
    listed = reactor(settings, "audit", "--outcome", "user_changed")
    assert listed.returncode == 0 and "user_changed" in listed.stdout, listed.stderr


def test_with_an_environment_admin_the_first_user_needs_its_credentials(settings, redis_conn):
    env_admin = {"REACTOR_ADMIN_USER": ADMIN_USER, "REACTOR_ADMIN_PASSWORD": ADMIN_PASSWORD}

    def add(*who: str, password: str | None = None):
        return reactor(settings, "users", "add", "mallory", "--role", "admin", "--password-stdin", *who,
                       stdin="mallory's long password\n", password=password, extra_env=env_admin)  # fmt: skip

    nobody = add()
    assert nobody.returncode == 1 and "REACTOR_ADMIN_USER is set: give --user NAME" in nobody.stderr
    wrong = add("--user", ADMIN_USER, password="not the admin's password")
    assert wrong.returncode == 1 and "wrong user name or password" in wrong.stderr
    assert not UserStore(redis_conn, settings).any() and user_changes(redis_conn) == []

    done = add("--user", ADMIN_USER, password=ADMIN_PASSWORD)
    assert done.returncode == 0, done.stderr
    [record] = user_changes(redis_conn)
    assert record.reason == f"by {ADMIN_USER} (REACTOR_ADMIN_USER): added mallory with the role admin"


def test_an_approved_write_off_over_the_daily_budget_is_held_and_a_release_writes_it_off_once(
    tiered, redis_conn, sandbox, settings, rules_file
):
    rules_file(
        TIERED_RULES.replace("max_write_off: {USD: 10000}", "max_write_off: {USD: 10000}\n  max_per_day: {USD: 100}")
    )
    first = tiered(9000)  # $90: no approval needed, most of today's $100
    settled(redis_conn, first["id"], "written_off")
    invoice = tiered(50000)  # $500: tier 1
    settled(redis_conn, invoice["id"], "awaits_approval")

    assert as_user(settings, "alice", "approvals", "approve", invoice["id"]).returncode == 0

    settled(redis_conn, invoice["id"], "held")
    assert write_offs(sandbox, invoice["id"]) == 0
    held = get_held(redis_conn, invoice["id"], settings.key_prefix)
    assert held is not None and not held.awaits_approval and "max_per_day" in (held.reason or "")
    released = as_user(settings, "bob", "held", "release", invoice["id"])
    assert released.returncode == 0, released.stderr
    settled(redis_conn, invoice["id"], "written_off")
    assert write_offs(sandbox, invoice["id"]) == 1
    assert outcomes(redis_conn, invoice["id"]).count("awaits_approval") == 1
    [record] = [r for r in records(redis_conn, invoice["id"], "written_off")]
    assert "approved_by=alice@" in (record.detail or "")
