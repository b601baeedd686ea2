"""LiveRules tells its reporter about every reload, with the content hash and file:line:col errors;
the reporter (reactor/reloads.py) is what /metrics counts once per edit across processes, and the
web and the worker both pass one in (see test_hot_reload.py for the real thing)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from reactor.config import Settings
from reactor.jobs import build_context
from reactor.keys import Keys
from reactor.local.redis_server import free_port
from reactor.notices import Notices
from reactor.reloads import RulesReloadReporter
from reactor.rules.live import LiveRules

GOOD = "version: 1\nmode: live\nrules:\n  - name: a\n    when: [{invoice.status: paid}]\n    action: skip\n"
OTHER = GOOD.replace("name: a", "name: b")
BROKEN = GOOD.replace("action: skip", "action: skipp")


def edit(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a new stamp even on coarse clocks


def test_a_refused_edit_is_reported_with_its_hash_and_errors_and_the_old_rules_stay(tmp_path: Path) -> None:
    path, calls = tmp_path / "rules.yaml", []
    edit(path, GOOD)
    live = LiveRules(path, reporter=lambda *args: calls.append(args))
    version = live.current().version
    edit(path, BROKEN)

    assert live.current().version == version
    ((outcome, digest, reported_path, errors),) = calls
    assert outcome == "refused" and reported_path == str(path)
    assert digest == hashlib.sha256(BROKEN.encode()).hexdigest()[:12]
    assert errors[0].startswith(f"{path}:6:13: unknown action 'skipp'")
    assert live.status()["refused_version"] == digest and live.refused_reloads == 1


def test_an_accepted_edit_is_reported_with_the_new_version_and_an_unchanged_file_not_at_all(tmp_path: Path) -> None:
    path, calls = tmp_path / "rules.yaml", []
    edit(path, GOOD)
    live = LiveRules(path, reporter=lambda *args: calls.append(args))
    live.current()
    live.current()
    assert calls == []  # the first load is not a reload
    edit(path, OTHER)

    new = live.current()

    assert [(c[0], c[1], c[3]) for c in calls] == [("accepted", new.version, [])]


def test_a_failing_reporter_does_not_cost_the_rules_in_force(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    edit(path, GOOD)

    def broken_reporter(*args: object) -> None:
        raise RuntimeError("redis is down")

    live = LiveRules(path, reporter=broken_reporter)
    live.current()
    edit(path, OTHER)
    assert live.current().rules[0].name == "b"


def test_the_reporter_counts_an_edit_once_however_many_processes_see_it(redis_conn: redis.Redis) -> None:
    reporter = RulesReloadReporter(redis_conn, "test")
    for _ in range(3):  # three processes see the same refused edit
        reporter("refused", "abc123", "/srv/rules.yaml", ["/srv/rules.yaml:6:13: unknown action 'skipp'"])
    reporter("accepted", "def456", "/srv/rules.yaml", [])

    assert reporter.counts() == {"refused": 1, "accepted": 1}
    last = reporter.last_refused()
    assert last is not None and last["digest"] == "abc123" and last["path"] == "/srv/rules.yaml"
    assert last["errors"] == ["/srv/rules.yaml:6:13: unknown action 'skipp'"]
    assert RulesReloadReporter(redis_conn, "other").counts() == {}  # under its prefix only


def test_the_reporter_logs_a_redis_outage_instead_of_raising(caplog: pytest.LogCaptureFixture) -> None:
    down = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))

    RulesReloadReporter(down)("refused", "abc123", "rules.yaml", [])

    assert "could not record the rules reload in Redis" in caplog.text


def test_the_worker_context_reports_its_reloads_to_redis(settings: Settings, redis_conn: redis.Redis) -> None:
    context = build_context(settings, redis_conn)
    version = context.rules.current().version
    edit(settings.rules_path, settings.rules_path.read_text().replace("version: 1", "version: one"))

    assert context.rules.current().version == version
    assert RulesReloadReporter(redis_conn, settings.key_prefix).counts() == {"refused": 1}


def test_a_refused_edit_is_told_once_to_a_person_and_an_accepted_one_not_at_all(redis_conn: redis.Redis) -> None:
    notices = Notices(redis_conn, "test")
    reporter = RulesReloadReporter(redis_conn, "test", notices)
    errors = ["/srv/rules.yaml:6:13: unknown action 'skipp'", "/srv/rules.yaml:9:5: unknown field 'whn'"]
    for _ in range(3):  # three processes see the same refused edit
        reporter("refused", "abc123def456789", "/srv/rules.yaml", errors)
    reporter("accepted", "fff000", "/srv/rules.yaml", [])

    entries = redis_conn.xrange(Keys("test").notices())
    assert [(f[b"kind"], f[b"text"]) for _, f in entries] == [
        (b"rules_refused", b"/srv/rules.yaml (abc123def456): /srv/rules.yaml:6:13: unknown action 'skipp' (and 1 more)")
    ]
    reporter("refused", "0ther", "/srv/rules.yaml", errors)
    assert redis_conn.xlen(Keys("test").notices()) == 2, "another refused edit is told too"
