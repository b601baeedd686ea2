"""The digest's message and its scrubbing, without Redis or HTTP (tests/integration/test_notify.py
sends them to a receiver)."""

from __future__ import annotations

from datetime import date

from reactor.config import Settings
from reactor.console.notify import MAX_BACKOFF, MAX_LINES, REDACTED, Notice, Notifier, digest, money_lines, scrub
from reactor.console.tally import DailyWriteOffs


def notices(kind: str, count: int, start: int = 1) -> list[Notice]:
    return [Notice(n, kind, f"{kind} line {n}", "2026-01-15T10:00:00+00:00") for n in range(start, start + count)]


def test_the_digest_groups_by_kind_lists_a_few_and_counts_the_rest():
    text = digest(notices("dead_letter", 25) + notices("held", 2, start=26), source="reactor (acme)")

    lines = text.splitlines()
    assert lines[0] == "reactor (acme): 27 things need a person"
    assert lines[1].startswith("*25 new dead letters")
    assert sum(line.startswith("• dead_letter line") for line in lines) == MAX_LINES
    assert f"• … and {25 - MAX_LINES} more" in lines
    assert lines.index("• held line 26") > lines.index(f"• … and {25 - MAX_LINES} more")


def test_the_digest_says_how_many_notices_were_dropped_unsent():
    text = digest(notices("budget", 1), dropped=40)
    assert text.splitlines()[0].endswith("41 things need a person")
    assert "*40 older notices were dropped*" in text


def test_the_digest_ends_with_the_day_written_off_net_of_undos():
    day = date(2026, 1, 15)
    daily = DailyWriteOffs(
        written_off={"USD": {day: 2500}, "JPY": {day: 3000}, "EUR": {day: 1200}},
        undone={"USD": {day: 1250}, "EUR": {day: 1200}},
    )

    text = digest(notices("undone", 1), money=money_lines(daily))

    assert text.splitlines()[-4:] == [
        "*written off today (UTC), net of undos*",
        "• 0.00 EUR (12.00 EUR written off, 12.00 undone since)",
        "• 3000 JPY",
        "• 12.50 USD (25.00 USD written off, 12.50 undone since)",
    ]
    assert "written off today" not in digest(notices("held", 1), money=money_lines(DailyWriteOffs()))


def test_scrub_removes_the_configured_secrets_and_credential_shapes():
    text = scrub(
        "key live_abcd1234 Authorization: Bearer abcdefgh12345 password=hunter22 https://u:pw12@host/x ok",
        ["live_abcd1234", "", "abc"],
    )
    assert text == (
        f"key {REDACTED} Authorization: {REDACTED} {REDACTED} password={REDACTED} https://{REDACTED}@host/x ok"
    )
    assert scrub("abc stays: too short to be a secret", ["abc"]) == "abc stays: too short to be a secret"


def test_a_failing_receiver_is_tried_again_after_a_growing_pause(monkeypatch):
    notifier = Notifier.__new__(Notifier)
    notifier.settings = Settings(notify_url="http://127.0.0.1:9/x", notify_interval=5)
    pauses = []
    for failures in range(10):
        notifier.failures = failures
        pauses.append(notifier.pause())
    assert pauses[:4] == [5, 10, 20, 40]
    assert max(pauses) == MAX_BACKOFF and pauses == sorted(pauses)
