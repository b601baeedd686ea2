"""The `reactor` command on hostile or odd input: every case ends in one line on stderr and a
non-zero exit, never a traceback; what it prints cannot drive the terminal or a spreadsheet.

Cases: a sweep right after `reactor run` (it must find the sandbox), event ids RQ would refuse as
job ids, durations and times out of range, a report to an unwritable path or a full disk, an
event file nested 100,000 deep or endless, and control characters in ids and fields."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rq.job import Job

from reactor.cli import main
from reactor.config import Settings
from reactor.console.deadletters import DeadLetterError, DeadLetters, NotAJobId
from reactor.ingest.events import evaluation_job_id
from reactor.jobs.audit import AuditLog, AuditRecord
from reactor.keys import Keys
from reactor.local.redis_server import free_port
from tests.helpers import wait_for
from tests.integration.helpers import exhausted_invoice, make_event
from tests.integration.ops_helpers import (
    cli_env,
    kill_run,
    listening,
    make_dead_letter,
    printed_sandbox,
    reactor_run,
    run_env,
    store_event,
)

pytestmark = pytest.mark.integration

ODD_EVENT_IDS = ["ev.dot.1", "ev:colon", "ev with spaces", "ev_é_ü", "ev/slash"]


def run(settings: Settings, *args: str, input: str | None = None) -> Result:
    """`reactor ARGS...` in-process with exceptions caught, as a user sees them: a traceback
    would show up as result.exception other than SystemExit."""
    return CliRunner().invoke(main, list(args), env=cli_env(settings), input=input)


def refused(result: Result) -> str:
    """Assert the command failed cleanly (exit != 0, no traceback) and return its error line."""
    assert not (result.exception and not isinstance(result.exception, SystemExit)), (
        f"a traceback: {result.exception!r}\n{result.output}"
    )
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors, result.output
    return errors[-1]


def no_chargebee(settings: Settings) -> Settings:
    return replace(settings, chargebee_api_base=None, chargebee_api_key="", chargebee_site=None)


# -- 4. the CLI finds what `reactor run` started ------------------------------------------------


def test_sweep_and_explain_find_the_sandbox_that_reactor_run_started_and_say_what_to_set_once_it_stops(
    tmp_path: Path,
):
    port, sandbox_port = free_port(), free_port()
    proc = reactor_run(tmp_path, port, sandbox_port, "run")
    output = tmp_path / "run.log"
    env = run_env(tmp_path, "run")  # the same as `reactor run`'s: its var/ holds the sandbox's address

    def reactor(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "reactor", *args]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    try:
        wait_for(lambda: "Ready." in output.read_text(), timeout=60, what="`reactor run` to say Ready")
        swept = reactor("sweep", "--dry-run")
        assert swept.returncode == 0, swept.stderr
        assert "dry run:" in swept.stdout and "would be written off" in swept.stdout
        explained = reactor("rules", "explain", "--invoice-id", "inv_demo_1001")
        assert explained.returncode == 0, explained.stderr
        assert printed_sandbox(output.read_text()) in explained.stdout  # not always at sandbox_port: see there
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
        assert not (tmp_path / "var-run" / "sandbox.url").exists(), "the record outlived `reactor run`"
        env["REDIS_URL"] = "redis://127.0.0.1:1/0"  # Redis is gone too; the Chargebee check comes first
        after = reactor("sweep", "--dry-run")
        assert after.returncode != 0 and "Traceback" not in after.stderr
        assert after.stderr.strip().splitlines()[-1].startswith("Error: no Chargebee configured: set CHARGEBEE_SITE")
    finally:
        kill_run(proc)
        assert not listening(port)


def test_every_command_that_calls_chargebee_says_what_to_set_when_nothing_is_configured(redis_conn, settings):
    bare = no_chargebee(settings)
    for args in (("sweep", "--dry-run"), ("rules", "explain", "--invoice-id", "inv_1"), ("worker", "--burst")):
        line = refused(run(bare, *args))
        if args[0] == "worker":  # a process logs its refusal, here as JSON (REACTOR_LOG_FORMAT=json)
            line = "Error: " + json.loads(line)["msg"].removeprefix("refused to start: ")
        assert line.startswith("Error: no Chargebee configured: set CHARGEBEE_SITE (or CHARGEBEE_API_BASE)"), args


def test_a_stale_sandbox_record_is_named_with_what_to_do(redis_conn, settings):
    bare = no_chargebee(settings)
    bare.var_dir.mkdir(parents=True, exist_ok=True)
    (bare.var_dir / "sandbox.url").write_text(f"http://127.0.0.1:{free_port()}/api/v2\n")

    line = refused(run(bare, "sweep", "--dry-run"))

    assert "does not answer" in line and "CHARGEBEE_SITE" in line


def test_sweep_uses_the_recorded_sandbox(redis_conn, settings, sandbox):
    exhausted_invoice(sandbox)
    bare = no_chargebee(settings)
    bare.var_dir.mkdir(parents=True, exist_ok=True)
    (bare.var_dir / "sandbox.url").write_text(sandbox.api_base + "\n")

    result = run(bare, "sweep", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "dry run: 1 invoices seen" in result.output


def test_a_chargebee_failure_during_a_sweep_is_one_line(redis_conn, settings, sandbox):
    sandbox.state.add_fault(match="list", status=401, times=None)

    line = refused(run(settings, "sweep", "--dry-run"))

    assert line.startswith("Error: sweep stopped:")


# -- 5. event ids that cannot be RQ job ids -----------------------------------------------------


@pytest.mark.parametrize("event_id", ODD_EVENT_IDS)
def test_events_replay_of_an_odd_stored_id_queues_it_under_a_digest_job_id(redis_conn, settings, sandbox, event_id):
    invoice = exhausted_invoice(sandbox)
    store_event(redis_conn, make_event(invoice, event_id=event_id))

    result = run(settings, "events", "replay", event_id)

    assert result.exit_code == 0, result.output
    job_id = result.output.split()[1]
    digest = evaluation_job_id(event_id).removeprefix("evaluate-")
    assert job_id.startswith(f"replay-{digest}-")
    job = Job.fetch(job_id, connection=redis_conn)
    assert job.args == (event_id,) and job.meta["event_id"] == event_id


@pytest.mark.parametrize("event_id", ODD_EVENT_IDS)
def test_dlq_show_finds_the_dead_letter_of_an_odd_event_id(redis_conn, settings, sandbox, event_id):
    invoice = exhausted_invoice(sandbox)
    job = make_dead_letter(redis_conn, settings, make_event(invoice, event_id=event_id))

    result = run(settings, "dlq", "show", event_id)

    assert result.exit_code == 0, result.output
    assert f"job:        {job.id}" in result.output
    assert invoice["id"] in result.output


@pytest.mark.parametrize("event_id", ODD_EVENT_IDS)
def test_odd_ids_nobody_stored_are_refused_in_one_line(redis_conn, settings, event_id):
    assert "no job and no dead letter" in refused(run(settings, "dlq", "show", event_id))
    assert "no stored event" in refused(run(settings, "events", "replay", event_id))
    assert "is not a job id" in refused(run(settings, "dlq", "replay", event_id))


def test_replay_of_an_odd_job_id_raises_a_dead_letter_error_callers_can_answer_as_4xx(redis_conn, settings):
    letters = DeadLetters(redis_conn, settings)

    with pytest.raises(NotAJobId) as raised:
        letters.replay("ev.dot.1")
    assert isinstance(raised.value, DeadLetterError)
    with pytest.raises(NotAJobId):
        letters.get("ev:colon")
    assert letters.find("ev with spaces") == []


@pytest.mark.parametrize("bad_id", ["..", "", "inv/../x", " inv_1", "inv 1", "inv\x1b[2J"])
@pytest.mark.parametrize(
    "args",
    [
        ("undo", "{}", "--reason", "r"),
        ("held", "release", "{}"),
        ("trace", "{}"),
        ("rules", "explain", "--invoice-id", "{}"),
    ],
)
def test_an_id_that_is_no_invoice_id_is_a_usage_error_before_redis_or_chargebee(
    redis_conn, settings, sandbox, args, bad_id
):
    """`rules explain --invoice-id ..` used to send GET /api/v2/: requests resolves /invoices/.. to it."""
    result = run(settings, *(bad_id if a == "{}" else a for a in args))
    line = refused(result)
    assert result.exit_code == 2 and line.startswith("Error: Invalid value for"), line
    assert "is not a Chargebee invoice id" in line and "\x1b" not in line
    assert sandbox.state.calls() == []


# -- 6. durations, times, paths -----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("audit", "--since", "999999d"),
        ("audit", "--since", "99999999999999w"),
        ("audit", "--since", "0001-01-01T00:00:00"),
        ("audit", "--since", "9999-12-31T23:59:59-14:00"),
        ("audit", "--since", "²d"),
        ("dlq", "list", "--since", "999999d"),
        ("dlq", "list", "--since", "0001-01-01"),
        ("dlq", "replay", "--all", "--since", "999999d", "--dry-run"),
        ("dlq", "purge", "--older-than", "999999999d", "--dry-run"),
        ("dlq", "purge", "--older-than", "999999999999999999999d", "--dry-run"),
        ("dlq", "purge", "--older-than", "²d", "--dry-run"),
        ("audit", "--limit", "0"),
        ("sweep", "--dry-run", "--min-days-overdue", "99999999999999999999"),
        ("run", "--port", "99999"),
        ("sandbox", "--port", "70000"),
    ],
)
def test_out_of_range_durations_times_and_numbers_are_one_line_errors(redis_conn, settings, args):
    line = refused(run(settings, *args))

    assert line.startswith("Error:"), line


def test_a_since_before_1970_says_to_leave_it_out(redis_conn, settings):
    line = refused(run(settings, "audit", "--since", "0001-01-01T00:00:00"))

    assert "before 1970" in line and "leave --since out" in line


def test_report_to_a_missing_directory_is_refused_before_the_sweep(redis_conn, settings, sandbox, tmp_path):
    line = refused(run(settings, "sweep", "--dry-run", "--report", str(tmp_path / "nowhere" / "report.csv")))

    assert "cannot write the report" in line and "no directory" in line
    assert sandbox.state.calls(path_contains="/invoices", method="GET") == [], "it swept before refusing"


def test_report_to_a_directory_is_refused(redis_conn, settings, sandbox, tmp_path):
    assert "is a directory" in refused(run(settings, "sweep", "--dry-run", "--report", str(tmp_path)))


def test_report_to_a_full_disk_is_one_line(redis_conn, settings, sandbox):
    exhausted_invoice(sandbox)

    line = refused(run(settings, "sweep", "--dry-run", "--report", "/dev/full"))

    assert line == "Error: cannot write the report to /dev/full: No space left on device"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a read-only file")
def test_report_to_a_read_only_file_is_refused(redis_conn, settings, sandbox, tmp_path):
    report = tmp_path / "report.csv"
    report.write_text("")
    report.chmod(0o444)

    assert "permission denied" in refused(run(settings, "sweep", "--dry-run", "--report", str(report)))


def test_explain_of_an_event_nested_100000_deep_is_one_line(settings, tmp_path):
    event = tmp_path / "nested.json"
    event.write_text("[" * 100_000)

    line = refused(run(settings, "rules", "explain", "--event", str(event)))

    assert line.startswith(f"Error: {event}")


def test_explain_of_dev_zero_reads_at_most_the_webhook_body_limit(settings):
    line = refused(run(settings, "rules", "explain", "--event", "/dev/zero"))

    assert "larger than 1048576 bytes" in line and "REACTOR_MAX_BODY_BYTES" in line


@pytest.mark.parametrize(
    ("content", "says"),
    [(b"\xff\xfe{}", "not UTF-8"), (b"[1, 2]", "one JSON object"), (b"{", "not valid JSON")],
)
def test_explain_of_files_that_are_no_event_is_one_line(settings, tmp_path, content, says):
    event = tmp_path / "event.json"
    event.write_bytes(content)

    assert says in refused(run(settings, "rules", "explain", "--event", str(event)))


# -- 7. control characters on output ------------------------------------------------------------

HOSTILE = "inv\x1b[2J\x1b]0;owned\x07\u202eevil\x85[bold]x[/bold]"
SHOWN = "inv\\x1b[2J\\x1b]0;owned\\x07\\u202eevil\\x85[bold]x[/bold]"
RAW = ("\x1b", "\x07", "\u202e", "\x85")


def clean(text: str) -> bool:
    return not any(char in text for char in RAW)


@pytest.fixture
def hostile_trail(redis_conn) -> AuditLog:
    log = AuditLog(redis_conn, Keys().audit())
    log.append(
        AuditRecord(
            event_id="ev_hostile",
            invoice_id=HOSTILE,
            outcome="written_off",
            rule='=HYPERLINK("http://x","y")',
            amount_due=1250,
            currency="USD",
            reason="line one\r\nline two\x7f",
            detail="@SUM(1+1)",
            job_id="-2+3",
        )
    )
    return log


def test_audit_table_escapes_control_characters_and_shows_markup_as_typed(hostile_trail, settings):
    result = run(settings, "audit")

    assert result.exit_code == 0, result.output
    assert clean(result.output)
    compact = "".join(result.output.split())  # the table may fold a long cell over lines
    assert "".join(SHOWN.split()) in compact
    assert "line one\\r\\nline two\\x7f" in result.output


def test_audit_csv_escapes_control_characters_and_neutralises_formulas(hostile_trail, settings):
    result = run(settings, "audit", "--format", "csv")

    assert result.exit_code == 0, result.output
    assert clean(result.output) and "\x7f" not in result.output
    (row,) = csv.DictReader(io.StringIO(result.output))
    assert row["invoice_id"] == SHOWN
    assert row["rule"] == '\'=HYPERLINK("http://x","y")'
    assert row["detail"] == "'@SUM(1+1)"
    assert row["job_id"] == "'-2+3"
    assert row["reason"] == "line one\\r\\nline two\\x7f"
    assert row["amount_due"] == "1250"


def test_audit_jsonl_is_printable_ascii_and_reads_back_exactly(hostile_trail, settings):
    result = run(settings, "audit", "--format", "jsonl")

    (line,) = result.output.splitlines()
    assert line.isascii() and line.isprintable()
    record = json.loads(line)
    assert record["invoice_id"] == HOSTILE and record["reason"] == "line one\r\nline two\x7f"


def test_dlq_list_and_show_escape_control_characters(redis_conn, settings, sandbox):
    event = make_event({"id": HOSTILE, "amount_due": 1250}, event_id="ev\x1b[31mred")
    job = make_dead_letter(redis_conn, settings, event)
    job.meta["event_type"] = "payment_failed\x1b]0;title\x07"
    job.save_meta()

    listed = run(settings, "dlq", "list")
    shown = run(settings, "dlq", "show", job.id)
    as_json = run(settings, "dlq", "list", "--format", "json")

    assert listed.exit_code == 0 and shown.exit_code == 0, listed.output + shown.output
    for output in (listed.output, shown.output, as_json.output):
        assert clean(output), output
    assert "ev\\x1b[31mred" in "".join(listed.output.split())
    assert f"invoice:    {SHOWN}" in shown.output
    assert json.loads(as_json.output)[0]["invoice_id"] == HOSTILE
