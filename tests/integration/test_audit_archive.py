"""The audit archive on real processes: records leave the Redis stream only once archived, each once
and in order; `reactor audit` reads the archive and the stream as one trail; an archive that cannot
be written trims nothing and is told; `reactor audit verify` names a segment edited or removed; the
same on S3, through moto's S3 API server started here."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis
import requests
from click.testing import CliRunner

from reactor.cli import main
from reactor.config import Settings
from reactor.console.archiving import audit_archive
from reactor.jobs.audit import AuditLog, AuditRecord, export_lines
from reactor.jobs.audit.archive import ArchiveState, ArchiveUnavailable, AuditArchive
from reactor.jobs.audit.manifest import ManifestEntry, entry_path
from reactor.keys import Keys
from reactor.local.redis_server import free_port
from tests.helpers import REPO, WebServer, wait_for, worker_env
from tests.integration.ops_helpers import cli_env

pytestmark = pytest.mark.integration

STREAM = Keys().audit()
OUTCOMES = ("no_match", "skipped", "written_off", "retrying", "collecting")


def archive_env(settings: Settings) -> dict[str, str]:
    """The archive settings of `settings` as the environment a command reads."""
    env = {
        "REACTOR_AUDIT_ARCHIVE": settings.audit_archive_url,
        "REACTOR_AUDIT_SEGMENT_RECORDS": str(settings.audit_segment_records),
        "REACTOR_AUDIT_SEGMENT_SECONDS": str(settings.audit_segment_seconds),
        "REACTOR_AUDIT_KEEP": str(settings.audit_keep),
        "REACTOR_AUDIT_ARCHIVE_INTERVAL": str(settings.audit_archive_interval),
    }
    if settings.notify_url:
        env["REACTOR_NOTIFY_URL"] = settings.notify_url
    return env


def run_reactor(settings: Settings, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m reactor ARGS...` as a process of its own, with the archive settings."""
    env = {**worker_env(settings), **archive_env(settings), **(extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "reactor", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )


def cli(settings: Settings, *args: str, extra: dict[str, str] | None = None):
    """`reactor ARGS...` in-process (a faster read of 50,000 records than a process of its own)."""
    env = {**cli_env(settings), **archive_env(settings), **(extra or {})}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def write_records(connection: redis.Redis, count: int, batch: int = 2000, start: int = 0) -> list[AuditRecord]:
    """`count` records through AuditLog's own write path, pipelined; each with the id Redis gave it."""
    log = AuditLog(connection, STREAM)
    written = []
    for first in range(start, start + count, batch):
        records = [
            AuditRecord(
                event_id=f"ev_{n}",
                invoice_id=f"inv_{n % 997}",
                outcome=OUTCOMES[n % len(OUTCOMES)],
                action="write_off",
                rule="small-balance",
                amount_due=n % 5000,
                currency="USD",
                mode="live",
                rules_version="8b9746bf125d",
                reason=f"dunning exhausted, {n} — ünïcode",
            )
            for n in range(first, min(first + batch, start + count))
        ]
        with connection.pipeline(transaction=False) as pipe:
            for record in records:
                log.queue(pipe, record)
            for record, entry_id in zip(records, pipe.execute(), strict=True):
                record.id = entry_id.decode()
        written += records
    return written


def as_stored(records: list[AuditRecord]) -> list[AuditRecord]:
    """The records as the stream gives them back."""
    return [AuditRecord.from_fields(r.id or "", r.to_fields()) for r in records]


def archived_ids(archive: AuditArchive) -> list[str]:
    return [entry_id for _segment, entry_id, _fields in archive.records()]


@pytest.fixture
def archive_settings(settings: Settings, tmp_path: Path) -> Settings:
    return replace(
        settings,
        audit_archive=str(tmp_path / "archive"),
        audit_segment_records=4000,
        audit_keep=1000,
        audit_archive_interval=1,
        notify_url="http://127.0.0.1:9/digest",
    )


def test_fifty_thousand_records_pass_through_a_small_stream_into_the_archive_once_in_order(
    archive_settings: Settings, redis_conn: redis.Redis, start_reactor
) -> None:
    cron = start_reactor(
        {**worker_env(archive_settings), **archive_env(archive_settings), "REACTOR_SWEEP_CRON": ""}, "cron"
    )
    written = write_records(redis_conn, 50_000)
    archive = audit_archive(archive_settings, redis_conn)
    # cron archives the full segments and trims as it goes; the last, partial one waits for its hour
    wait_for(lambda: archive.state().archived >= 48_000, timeout=60, what="cron archiving the full segments")
    cron.stop()
    result = run_reactor(archive_settings, "audit", "archive", "--flush")
    assert result.returncode == 0, result.stderr

    ids = [record.id for record in written]
    assert archived_ids(archive) == ids  # every record, once, in order
    assert redis_conn.xlen(STREAM) <= archive_settings.audit_keep  # the rest left Redis
    assert archive.lag().waiting == 0
    exported = cli(archive_settings, "audit", "--format", "jsonl")
    assert exported.exit_code == 0, exported.output
    assert exported.stdout == "".join(export_lines(as_stored(written), "jsonl"))
    # a window across the archive and the stream, and one invoice's records
    middle = cli(archive_settings, "audit", "--format", "jsonl", "--invoice", "inv_5")
    assert [json.loads(line)["id"] for line in middle.output.splitlines()] == [
        r.id for r in written if r.invoice_id == "inv_5"
    ]
    # the latest records, newest first across the stream's bottom into the archive
    latest = cli(archive_settings, "audit", "--format", "jsonl", "--limit", "1500")
    assert [json.loads(line)["id"] for line in latest.stdout.splitlines()] == ids[-1500:]
    # a window in the archive's time, by the stream ids' milliseconds as `--since` reads them
    since = datetime.fromtimestamp(int(ids[10_000].split("-")[0]) / 1000, timezone.utc)
    until = datetime.fromtimestamp(int(ids[20_000].split("-")[0]) / 1000, timezone.utc)
    low, high = int(since.timestamp() * 1000), int(until.timestamp() * 1000)
    window = cli(
        archive_settings, "audit", "--format", "jsonl", "--since", since.isoformat(), "--until", until.isoformat()
    )
    assert [json.loads(line)["id"] for line in window.stdout.splitlines()] == [
        i for i in ids if low <= int(i.split("-")[0]) <= high
    ]
    # every record was counted for /metrics before it left the stream
    stats = redis_conn.hgetall(f"{STREAM}:stats")
    assert sum(int(v) for k, v in stats.items() if k.startswith(b"decision|")) == 50_000
    verified = run_reactor(archive_settings, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    segments = len(archive.segments())  # 13 of at most 4,000 records, more if the writes spanned two hours
    assert segments >= 13 and f"ok: {segments} segments, 50000 records" in verified.stdout


def test_an_archive_that_cannot_be_written_trims_nothing_is_told_and_catches_up(
    archive_settings: Settings, redis_conn: redis.Redis, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the archive's parent should be\n")  # root cannot stop root from chmod: a file can
    settings = replace(archive_settings, audit_archive=str(blocker / "archive"))
    written = write_records(redis_conn, 6000)

    result = run_reactor(settings, "audit", "archive", "--flush")
    assert result.returncode == 3
    assert "cannot be written" in result.stderr and "nothing trimmed" in result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(line["level"] == "error" and "audit archive unreachable" in line["msg"] for line in lines)
    assert redis_conn.xlen(STREAM) == 6000  # nothing trimmed
    notices = redis_conn.xrange(Keys().notices())
    assert [n[1][b"kind"] for n in notices] == [b"audit_archive"]
    archive = audit_archive(settings, redis_conn)
    lag = archive.lag()
    assert lag.waiting == 6000 and lag.error and lag.seconds >= 0

    blocker.unlink()  # the archive is back
    result = run_reactor(settings, "audit", "archive", "--flush")
    assert result.returncode == 0, result.stderr
    assert archived_ids(archive) == [r.id for r in written]
    assert redis_conn.xlen(STREAM) == settings.audit_keep
    assert archive.lag().error is None


def test_readyz_and_metrics_report_the_archive_lag_and_stay_ready(
    archive_settings: Settings, redis_conn: redis.Redis, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings = replace(archive_settings, audit_archive=str(blocker / "archive"))
    server = WebServer(settings)
    try:
        write_records(redis_conn, 500)
        oldest = int(redis_conn.xrange(STREAM, count=1)[0][0].decode().split("-")[0]) / 1000
        assert run_reactor(settings, "audit", "archive", "--flush").returncode == 3
        ready = requests.get(f"{server.url}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["status"] == "ready"  # reported, never fatal
        lag = ready.json()["checks"]["audit_archive"]
        assert lag["waiting"] == 500 and lag["last_id"] is None and "NotADirectoryError" in lag["error"]
        assert lag["lag_seconds"] >= time.time() - oldest - 1
        metrics = requests.get(f"{server.url}/metrics", timeout=5).text
        assert 'reactor_audit_archive_waiting{site="default"} 500.0' in metrics
        assert 'reactor_audit_archive_failing{site="default"} 1.0' in metrics

        blocker.unlink()
        assert run_reactor(settings, "audit", "archive", "--flush").returncode == 0
        lag = requests.get(f"{server.url}/readyz", timeout=5).json()["checks"]["audit_archive"]
        assert lag == {"lag_seconds": 0.0, "waiting": 0, "last_id": lag["last_id"], "error": None}
        assert lag["last_id"] == redis_conn.xrevrange(STREAM, count=1)[0][0].decode()
        metrics = requests.get(f"{server.url}/metrics", timeout=5).text
        assert 'reactor_audit_archive_lag_seconds{site="default"} 0.0' in metrics
        assert 'reactor_audit_archive_failing{site="default"} 0.0' in metrics
    finally:
        server.stop()


def test_verify_names_an_edited_segment_a_missing_one_and_a_removed_entry(
    archive_settings: Settings, redis_conn: redis.Redis
) -> None:
    write_records(redis_conn, 10_000)
    assert run_reactor(archive_settings, "audit", "archive", "--flush").returncode == 0
    root = Path(archive_settings.audit_archive_url)
    segments = sorted((root / "segments").iterdir())
    assert len(segments) == 3

    # one record's amount changed by hand, the file compressed again
    lines = gzip.decompress(segments[1].read_bytes()).decode().splitlines(keepends=True)
    record = json.loads(lines[7])
    record["amount_due"] = "1"
    lines[7] = json.dumps(record) + "\n"
    segments[1].write_bytes(gzip.compress("".join(lines).encode()))
    result = run_reactor(archive_settings, "audit", "verify")
    assert result.returncode == 1
    assert f"first broken: segments/{segments[1].name}: its SHA-256 differs" in result.stderr
    assert [n[1][b"kind"] for n in redis_conn.xrange(Keys().notices())] == [b"audit_verify"]
    # --since checks the segments from the one holding that moment on (and the link to the one before)
    third = datetime.fromtimestamp(int(segments[2].name.split("-")[0]) / 1000 + 0.001, timezone.utc)
    result = run_reactor(archive_settings, "audit", "verify", "--since", third.isoformat())
    assert result.returncode == 0 and "ok: 1 segment, 2000 records" in result.stdout, result.stderr

    segments[0].unlink()
    result = run_reactor(archive_settings, "audit", "verify")
    assert f"first broken: segments/{segments[0].name}: missing" in result.stderr
    assert f"also: segments/{segments[1].name}" in result.stderr

    # a manifest entry removed (with its segment): the next entry's link names the gap
    entries = sorted((root / "manifest").iterdir())
    entries[0].unlink()
    result = run_reactor(archive_settings, "audit", "verify")
    assert result.returncode == 1
    assert f"first broken: segments/{segments[1].name}: the manifest's chain is broken" in result.stderr


@pytest.fixture
def s3_server() -> Iterator[tuple[str, object]]:
    """moto's S3 API server on a free port, and the server, which the test may stop and start."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}", server
    server.stop()


def test_the_archive_on_s3_trims_nothing_while_s3_is_down_and_catches_up(
    archive_settings: Settings, redis_conn: redis.Redis, s3_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, server = s3_server
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
    }
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="audit")
    settings = replace(archive_settings, audit_archive="s3://audit/reactor")
    written = write_records(redis_conn, 9000)
    assert run_reactor(settings, "audit", "archive", "--flush", extra=aws).returncode == 0
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket="audit")["Contents"]]
    assert sum(key.startswith("reactor/segments/") for key in keys) == 3
    assert sum(key.startswith("reactor/manifest/") for key in keys) == 3

    server.stop()  # S3 down
    more = write_records(redis_conn, 3000, start=9000)
    kept = redis_conn.xlen(STREAM)
    result = run_reactor(settings, "audit", "archive", "--flush", extra={**aws, "AWS_MAX_ATTEMPTS": "1"})
    assert result.returncode == 3, result.stderr
    assert "audit archive unreachable, nothing trimmed" in result.stderr
    assert redis_conn.xlen(STREAM) == kept  # nothing trimmed
    assert run_reactor(settings, "audit", "verify", extra={**aws, "AWS_MAX_ATTEMPTS": "1"}).returncode == 3

    server.start()  # back, with what it held
    assert run_reactor(settings, "audit", "archive", "--flush", extra=aws).returncode == 0
    archive = audit_archive(settings, redis_conn)
    assert archived_ids(archive) == [r.id for r in written + more]
    verified = run_reactor(settings, "audit", "verify", extra=aws)
    assert verified.returncode == 0, verified.stderr
    exported = cli(settings, "audit", "--format", "jsonl", extra=aws)
    assert exported.stdout == "".join(export_lines(as_stored(written + more), "jsonl")), exported.stderr[:2000]


def test_trace_finds_a_write_off_whose_records_left_redis_in_the_archive(
    settings: Settings, redis_conn: redis.Redis, our_write_off: dict
) -> None:
    invoice_id = our_write_off["id"]
    emptied = replace(settings, audit_keep=0)  # the default archive, var/audit-archive; Redis keeps none
    assert run_reactor(emptied, "audit", "archive", "--flush").returncode == 0
    assert redis_conn.xlen(STREAM) == 0
    segment = audit_archive(settings, redis_conn).segments()[0][1]

    result = run_reactor(emptied, "trace", invoice_id)
    assert result.returncode == 0, result.stderr
    assert "outcome written_off, 12.50 USD" in result.stdout
    assert f"read from the archive {settings.var_dir / 'audit-archive'}, segment {segment}" in result.stdout
    shown = json.loads(run_reactor(emptied, "trace", invoice_id, "--format", "json").stdout)
    assert shown["audit_archived_from"] == [segment]
    assert any(step["title"].startswith("outcome written_off") for step in shown["steps"])
    # the trail reads them too
    exported = run_reactor(emptied, "audit", "--invoice", invoice_id, "--format", "jsonl").stdout
    assert [json.loads(line)["outcome"] for line in exported.splitlines()][-1] == "written_off"

    # asked by its event id once the stored event has expired: the archive names its invoice
    event_ids = {f["event_id"] for _s, _id, f in audit_archive(settings, redis_conn).records() if f.get("event_id")}
    assert len(event_ids) == 1
    (event_id,) = event_ids
    assert redis_conn.delete(f"reactor:event:{event_id}") == 1
    by_event = run_reactor(emptied, "trace", event_id)
    assert by_event.returncode == 0, by_event.stderr
    assert invoice_id in by_event.stdout and "outcome written_off, 12.50 USD" in by_event.stdout
    unknown = run_reactor(emptied, "trace", "ev_never_received")
    assert unknown.returncode == 1 and "nothing kept" in unknown.stderr


def test_a_round_after_a_crash_archives_each_record_once_and_keeps_the_chain(
    archive_settings: Settings, redis_conn: redis.Redis
) -> None:
    written = write_records(redis_conn, 6000)
    archive = replace_archive(archive_settings, redis_conn)
    first = archive.run(flush=True)
    assert first is not None and len(first.segments) == 2
    after_first_segment = ArchiveState(**{**archive.state().__dict__})
    entry_one = ManifestEntry.read(Path(archive_settings.audit_archive_url, entry_path(written[0].id)).read_bytes())

    def crash_back_to_the_first_segment() -> None:
        redis_conn.delete(archive.state_key)
        redis_conn.hset(
            archive.state_key,
            mapping={
                "last_id": entry_one.last_id,
                "last_entry": entry_one.digest(),
                "archived": entry_one.records,
                "base": after_first_segment.base or 0,
            },
        )

    # killed after the second entry was written, before its position was recorded: adopted, not rewritten
    crash_back_to_the_first_segment()
    again = archive.run(flush=True)
    assert again is not None and again.adopted == 1 and again.segments == []
    assert archived_ids(archive) == [r.id for r in written]
    # killed after the second segment was written, before its entry: written again under its name
    second_entry = Path(archive_settings.audit_archive_url, entry_path(written[4000].id))
    second_entry.unlink()
    crash_back_to_the_first_segment()
    again = archive.run(flush=True)
    assert again is not None and again.adopted == 0 and len(again.segments) == 1
    assert archived_ids(archive) == [r.id for r in written]
    assert archive.verify().ok and archive.state().last_id == written[-1].id
    # Redis lost the position altogether: the manifest's last entry says where the archive ends
    redis_conn.delete(archive.state_key)
    more = write_records(redis_conn, 10, start=6000)
    again = archive.run(flush=True)
    assert again is not None and again.adopted == 1 and again.records == 10
    assert archived_ids(archive) == [r.id for r in written + more]
    assert archive.verify().ok


def test_the_trim_never_passes_a_record_the_tally_has_not_counted(
    archive_settings: Settings, redis_conn: redis.Redis
) -> None:
    written = write_records(redis_conn, 3000)
    archive = AuditArchive(
        redis_conn, STREAM, archive_settings.audit_archive_url, keep=0, hold_keys=(f"{STREAM}:stats:cursor",)
    )
    redis_conn.set(f"{STREAM}:stats:cursor", written[999].id)  # counted up to the 1,000th
    done = archive.run(flush=True)
    assert done is not None and done.records == 3000 and done.trimmed == 1000
    assert redis_conn.xrange(STREAM, count=1)[0][0].decode() == written[1000].id
    redis_conn.set(f"{STREAM}:stats:cursor", written[-1].id)
    assert archive.trim() == 2000 and redis_conn.xlen(STREAM) == 0


def replace_archive(settings: Settings, connection: redis.Redis) -> AuditArchive:
    """The settings' archive, with segments of 4,000 records, trimming nothing (a crash stops a round
    before its trim: the records after the recorded position stay)."""
    return AuditArchive(connection, STREAM, settings.audit_archive_url, segment_records=4000, keep=1_000_000)


def test_a_root_that_does_not_hold_the_recorded_position_is_refused_and_nothing_trimmed(
    archive_settings: Settings, redis_conn: redis.Redis, tmp_path: Path
) -> None:
    write_records(redis_conn, 3000)
    first = AuditArchive(redis_conn, STREAM, archive_settings.audit_archive_url, keep=0)
    assert first.run(flush=True) is not None and redis_conn.xlen(STREAM) == 0
    write_records(redis_conn, 500, start=3000)
    stray = AuditArchive(redis_conn, STREAM, str(tmp_path / "stray"), keep=0)  # another directory's default
    with pytest.raises(ArchiveUnavailable, match=r"does not hold the last archived records.*nothing trimmed"):
        stray.run(flush=True)
    assert redis_conn.xlen(STREAM) == 500
    assert not (tmp_path / "stray" / "segments").exists()
    assert "does not hold" in (first.state().error or "")
    done = first.run(flush=True)  # the right root goes on
    assert done is not None and done.records == 500 and first.verify().ok


def test_a_stream_behind_the_archive_after_redis_lost_the_position_is_refused(
    archive_settings: Settings, redis_conn: redis.Redis
) -> None:
    write_records(redis_conn, 100)
    archive = AuditArchive(redis_conn, STREAM, archive_settings.audit_archive_url, keep=0)
    assert archive.run(flush=True) is not None
    redis_conn.flushall()  # a flushed Redis; the new records' clock is behind the archive's end
    redis_conn.xadd(STREAM, {"event_id": "ev_low"}, id="5-1")
    with pytest.raises(ArchiveUnavailable, match=r"at or before.*nothing trimmed"):
        archive.run(flush=True)
    assert redis_conn.xlen(STREAM) == 1


def test_a_position_is_recorded_only_under_the_rounds_lock_and_forward_and_segments_never_change(
    archive_settings: Settings, redis_conn: redis.Redis
) -> None:
    written = write_records(redis_conn, 100)
    archive = AuditArchive(redis_conn, STREAM, archive_settings.audit_archive_url, keep=0)
    assert archive.run(flush=True) is not None
    before = redis_conn.hgetall(archive.state_key)
    entry = ManifestEntry.read(Path(archive_settings.audit_archive_url, entry_path(written[0].id)).read_bytes())
    later = replace(entry, last_id="99999999999999-0")
    archive._token = "a-lost-token"  # the round's lock expired and another round took it
    redis_conn.set(archive.lock_key, "another-round")
    with pytest.raises(ArchiveUnavailable, match="lost its lock"):
        archive._record(archive.state(), later)
    redis_conn.set(archive.lock_key, "a-lost-token")
    earlier = replace(entry, last_id="1-0")
    with pytest.raises(ArchiveUnavailable, match="not after the recorded"):
        archive._record(archive.state(), earlier)
    assert redis_conn.hgetall(archive.state_key) == before
    with pytest.raises(ArchiveUnavailable, match="other bytes"):
        archive._put(entry.segment, b"different bytes")
    archive._put(entry.segment, Path(archive_settings.audit_archive_url, entry.segment).read_bytes())  # same: fine
    assert archive.verify().ok
