"""Redis memory per event: what a burst of webhooks costs at its peak and what stays for 30 days.

    .venv/bin/python bench/memory.py [--events 10000] [--workers 2] [--redis-server PATH]

A real redis-server, the sandbox (no latency) holding the invoices that the write-off events name,
and the reactor web app in this process (Flask's test client: the real webhook handler and its
accept script); then `--events` events in the shapes of tests/fixtures/chargebee/ (payment_failed,
invoice_updated, their Product Catalog 2.0 variants, subscription_cancelled without an invoice)
with their ids and amounts varied, and 10% exhausted-dunning payment_failed events that the shipped
rules.yaml writes off. All of them are posted before a worker starts (a burst faster than the
drain), then `--workers` `reactor worker` processes drain the queue while INFO memory is sampled.

Reported, per event, against the targets of the 30-day replay window:
- peak: the highest used_memory during the burst and the drain, minus the empty Redis's;
- retained: MEMORY USAGE of the keys that outlive the burst (no TTL, or one over an hour: the
  stored events, the dedupe marks, the traces, the audit stream...), and used_memory once the
  short-lived keys (RQ's jobs and results, minutes) are deleted, as they would expire;
- the bytes per kind of key, at the peak and retained.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from stack import stop  # noqa: E402

from reactor.config import load_settings  # noqa: E402
from reactor.jobs.audit.archive import AuditArchive  # noqa: E402
from reactor.local.redis_server import EmbeddedRedis, find_redis_server, free_port  # noqa: E402
from reactor.sandbox.demo import _exhausted, demo_payment_failed_event  # noqa: E402
from reactor.sandbox.state import DEMO_API_KEY  # noqa: E402
from reactor.web import create_app  # noqa: E402

TARGET_RETAINED = 1500  # bytes per event kept for the 30-day replay window
TARGET_PEAK = 4000  # bytes per event at the peak of the burst
SHORT_LIVED = 3600  # a key whose TTL is at most this is transient (RQ's jobs and results)
USER, PASSWORD = "bench", "bench-secret"
FIXTURES = ROOT / "tests" / "fixtures" / "chargebee"
SHAPES = (  # fixture, weight
    ("payment_failed", 35),
    ("invoice_updated", 25),
    ("pc2_payment_failed", 10),
    ("pc2_invoice_updated", 10),
    ("subscription_cancelled", 10),
)
WRITE_OFF_SHARE = 0.10


def varied(template: dict[str, Any], n: int, rng: random.Random, now: int) -> dict[str, Any]:
    """The fixture with its own event, invoice, customer and transaction ids, amounts and times."""
    event = copy.deepcopy(template)
    event["id"] = f"ev_mem_{n:07d}_{rng.getrandbits(40):010x}"
    event["occurred_at"] = now - rng.randint(0, 3600)
    content = event["content"]
    customer_id = f"cus_mem_{rng.getrandbits(48):012x}"
    invoice = content.get("invoice")
    if isinstance(invoice, dict):
        total = rng.randint(100, 500_000)
        paid = 0 if rng.random() < 0.8 else rng.randint(0, total)
        invoice.update(
            id=f"inv_mem_{n:07d}",
            customer_id=customer_id,
            total=total,
            sub_total=total,
            amount_paid=paid,
            amount_due=total - paid,
            amount_to_collect=total - paid,
            date=now - rng.randint(30, 400) * 86400,
            due_date=now - rng.randint(0, 370) * 86400,
            updated_at=event["occurred_at"],
            resource_version=event["occurred_at"] * 1000 + rng.randint(0, 999),
        )
    for name in ("customer", "subscription", "transaction", "card"):
        resource = content.get(name)
        if isinstance(resource, dict):
            if name == "customer":
                resource["id"] = customer_id
            elif "customer_id" in resource:
                resource["customer_id"] = customer_id
            if name in ("subscription", "transaction"):
                resource["id"] = f"{name[:3]}_mem_{rng.getrandbits(48):012x}"
    return event


def make_bodies(count: int, control: str, now: int, seed: int = 20261127) -> tuple[list[bytes], int]:
    """The events as posted, and how many of them carry an invoice (the rest are only counted)."""
    rng = random.Random(seed)
    templates = {name: json.loads((FIXTURES / f"{name}.json").read_text()) for name, _w in SHAPES}
    names, weights = zip(*SHAPES, strict=True)
    write_offs = [n for n in range(count) if rng.random() < WRITE_OFF_SHARE]
    invoices: list[dict[str, Any]] = []
    for start in range(0, len(write_offs), 1000):
        batch = [
            _exhausted(200000 + n, f"cus_mem_w{n}", 500 + n % 2000, "USD", now, 40)
            for n in write_offs[start : start + 1000]
        ]
        invoices += requests.post(f"{control}/invoices", json=batch, timeout=60).json()["invoices"]
    by_number = dict(zip(write_offs, invoices, strict=True))
    bodies, with_invoice = [], 0
    for n in range(count):
        if n in by_number:
            event = demo_payment_failed_event(by_number[n], now)
            event["id"] = f"ev_mem_w{n:07d}"
        else:
            event = varied(templates[rng.choices(names, weights)[0]], n, rng, now)
        with_invoice += isinstance(event["content"].get("invoice"), dict)
        bodies.append(json.dumps(event, separators=(",", ":")).encode())
    return bodies, with_invoice


def key_kind(key: bytes) -> str:
    kind = re.sub(r"(ev|inv|evaluate|cus)[-_][A-Za-z0-9_-]+", r"\1-*", key.decode())
    return re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27,}", "*", kind)


def key_memory(conn: redis.Redis) -> dict[bytes, tuple[int, int]]:
    """Every key: (MEMORY USAGE, TTL in seconds or -1)."""
    keys = list(conn.scan_iter(count=1000))
    with conn.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
            pipe.ttl(key)
        answers = pipe.execute()
    return {key: (answers[2 * i] or 0, answers[2 * i + 1]) for i, key in enumerate(keys)}


def by_kind(sizes: dict[bytes, tuple[int, int]], keep: Any = lambda _size, _ttl: True) -> dict[str, int]:
    totals: dict[str, int] = {}
    for key, (size, ttl) in sizes.items():
        if keep(size, ttl):
            kind = key_kind(key)
            totals[kind] = totals.get(kind, 0) + size
    return totals


def long_lived(_size: int, ttl: int) -> bool:
    return ttl == -1 or ttl > SHORT_LIVED


class Sampler(threading.Thread):
    """The highest used_memory seen, every 20 ms, with the keys at that moment left to the caller."""

    def __init__(self, conn: redis.Redis):
        super().__init__(daemon=True)
        self.conn, self.peak, self.stopping = conn, 0, threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.peak = max(self.peak, self.conn.info("memory")["used_memory"])
            self.stopping.wait(0.02)


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    server = EmbeddedRedis(work / "redis", binary=args.redis_server).start()
    conn = server.client()
    sandbox_port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "REACTOR_WEBHOOK_USER": USER,
        "REACTOR_WEBHOOK_PASSWORD": PASSWORD,
        "REACTOR_RULES": str(ROOT / "rules.yaml"),
        "CHARGEBEE_API_BASE": f"http://127.0.0.1:{sandbox_port}/api/v2",
        "CHARGEBEE_API_KEY": DEMO_API_KEY,
        "REACTOR_CHARGEBEE_RATE_LIMIT": "100000000",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    sandbox_cmd = [sys.executable, "-m", "reactor.sandbox", "--port", str(sandbox_port), "--no-seed"]
    with (logs / "sandbox.log").open("ab") as out:
        procs.append(subprocess.Popen(sandbox_cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
    try:
        control = f"http://127.0.0.1:{sandbox_port}/_sandbox"
        deadline = time.monotonic() + 30
        while not _up(f"{control}/faults"):
            if time.monotonic() > deadline:
                raise RuntimeError("the sandbox did not start")
            time.sleep(0.2)
        now = int(time.time())
        bodies, with_invoice = make_bodies(args.events, control, now)
        settings = load_settings(env, dotenv=False)
        app = create_app(settings, conn)
        client = app.test_client()
        headers = {
            "Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
            "Content-Type": "application/json",
        }
        conn.flushall()
        conn.execute_command("MEMORY", "PURGE")
        baseline = conn.info("memory")["used_memory"]
        baseline_stats = _memory_stats(conn)
        sampler = Sampler(conn)
        sampler.start()
        statuses: dict[int, int] = {}
        started = time.perf_counter()
        for body in bodies:
            status = client.post("/webhooks/chargebee", data=body, headers=headers).status_code
            statuses[status] = statuses.get(status, 0) + 1
        ingest_s = time.perf_counter() - started
        queued = conn.info("memory")["used_memory"] - baseline
        queued_kinds = by_kind(key_memory(conn))
        workers = []
        for n in range(args.workers):
            with (logs / f"worker-{n}.log").open("ab") as out:
                cmd = [str(Path(sys.executable).parent / "reactor"), "worker", "--name", f"bench-memory-{n}"]
                workers.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
        procs += workers
        deadline = time.monotonic() + args.timeout
        while conn.xlen("reactor:audit") < with_invoice:
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out: {conn.xlen('reactor:audit')} of {with_invoice} events decided")
            time.sleep(0.2)
        drain_s = time.perf_counter() - started - ingest_s
        for worker in workers:  # stopped before the keys are read, so that nothing changes under them
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(30)
        sampler.stopping.set()
        sampler.join()
        sizes = key_memory(conn)
        drained_kinds = by_kind(sizes)
        retained_kinds = by_kind(sizes, long_lived)
        outcomes: dict[str, int] = {}
        for _id, fields in conn.xrange("reactor:audit"):
            outcome = fields.get(b"outcome", b"?").decode()
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        archived = archive_bytes(conn, work / "audit-archive")
        for key, (_size, ttl) in sizes.items():  # what expires within the hour, deleted as it would expire
            if not long_lived(0, ttl):
                conn.delete(key)
        conn.execute_command("MEMORY", "PURGE")
        retained_info = conn.info("memory")["used_memory"] - baseline
        stats = _memory_stats(conn)
        redis_version = conn.info("server")["redis_version"]
        a_trace = next(conn.scan_iter(match="reactor:trace:*", count=1000), None)
        trace_encoding = conn.object("encoding", a_trace).decode() if a_trace else "none"
        server_binary = find_redis_server(args.redis_server)
    finally:
        stop(procs)
        server.stop()
    return {
        "events": args.events,
        "redis_version": redis_version,
        "redis_binary": server_binary,
        "trace_encoding": trace_encoding,
        "with_invoice": with_invoice,
        "body_bytes": sum(len(b) for b in bodies) / len(bodies),
        "statuses": statuses,
        "ingest_s": ingest_s,
        "drain_s": drain_s,
        "queued": queued,
        "peak": sampler.peak - baseline,
        "retained_keys": sum(retained_kinds.values()),
        "retained_info": retained_info,
        "queued_kinds": queued_kinds,
        "drained_kinds": drained_kinds,
        "retained_kinds": retained_kinds,
        "outcomes": outcomes,
        "archived": archived,
        "stats": stats,
        "baseline_stats": baseline_stats,
    }


def archive_bytes(conn: redis.Redis, root: Path) -> tuple[int, int]:
    """The audit stream archived whole (reactor/jobs/audit/archive.py, its defaults; a copy: nothing
    is trimmed, Redis keeps the stream): (records, bytes of the segments and manifest entries)."""
    conn.copy("reactor:audit", "bench:audit")
    AuditArchive(conn, "bench:audit", str(root)).run(flush=True)
    conn.delete("bench:audit", "bench:audit:archive")
    size = sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
    return int(conn.xlen("reactor:audit")), size


def _memory_stats(conn: redis.Redis) -> dict[str, int]:
    """MEMORY STATS: the key count and what Redis spends on its own tables rather than values."""
    raw = conn.execute_command("MEMORY", "STATS")
    stats = dict(zip(raw[::2], raw[1::2], strict=True))
    db = dict(zip(stats[b"db.0"][::2], stats[b"db.0"][1::2], strict=True)) if b"db.0" in stats else {}
    return {
        "keys": int(stats[b"keys.count"]),
        "dataset": int(stats[b"dataset.bytes"]),
        "tables": int(db.get(b"overhead.hashtable.main", 0)) + int(db.get(b"overhead.hashtable.expires", 0)),
    }


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _kinds(kinds: dict[str, int], events: int) -> str:
    shown = sorted(((k, v) for k, v in kinds.items() if v / events >= 1), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v / events:,.0f}" for k, v in shown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--redis-server", help="the redis-server binary (default: the one `reactor run` would use)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reactor-bench-memory-") as work:
        r = run(args, Path(work))
    n = r["events"]
    load = os.getloadavg()
    print(f"memory benchmark: {n:,} events ({r['with_invoice']:,} with an invoice, {WRITE_OFF_SHARE:.0%} written off),")
    print(f"mean body {r['body_bytes']:,.0f} bytes; {os.cpu_count()} cpus, load average {load[0]:.2f} {load[1]:.2f}")
    print(f"Redis {r['redis_version']} ({r['redis_binary']})")
    print(f"webhook answers: {r['statuses']}; posted in {r['ingest_s']:.1f} s,", end=" ")
    print(f"drained by {args.workers} workers in {r['drain_s']:.1f} s")
    print(f"outcomes: {', '.join(f'{k} {v}' for k, v in sorted(r['outcomes'].items()))}")
    print()
    drained = sum(r["drained_kinds"].values()) / n
    kept, info = r["retained_keys"] / n, r["retained_info"] / n
    print(f"queued (all posted, no worker yet): {r['queued'] / n:,.0f} B/event (INFO used_memory)")
    print(f"  by key: {_kinds(r['queued_kinds'], n)}")
    print(f"drained, before the short-lived keys expire: {drained:,.0f} B/event (MEMORY USAGE)")
    print(f"  by key: {_kinds(r['drained_kinds'], n)}")
    print(f"retained 30 days: {kept:,.0f} B/event (MEMORY USAGE), {info:,.0f} (INFO used_memory)")
    print(f"  by key: {_kinds(r['retained_kinds'], n)}")
    stats, base = r["stats"], r["baseline_stats"]
    print(
        f"  MEMORY STATS: {stats['keys'] - base['keys']:,} keys ({(stats['keys'] - base['keys']) / n:.1f} per event), "
        f"key tables {(stats['tables'] - base['tables']) / n:,.0f} B/event, "
        f"dataset {(stats['dataset'] - base['dataset']) / n:,.0f} B/event; "
        f"a trace list is a {r['trace_encoding']} (a quicklist, before Redis 7.2, wraps even a short list)"
    )
    records, size = r["archived"]
    print(
        f"audit archive: {records:,} records ({records / n:.2f} per event) in {size:,} bytes of gzip segments and"
        f" manifest: {size / records:,.1f} B/record, {size / n:,.1f} B/event"
    )
    print()
    peak = r["peak"] / n
    retained = max(r["retained_keys"], r["retained_info"]) / n
    ok_peak, ok_retained = peak <= TARGET_PEAK, retained <= TARGET_RETAINED
    accepted = r["statuses"].get(200, 0) == n
    verdict = "PASS" if ok_peak else "FAIL"
    print(f"RESULT: {verdict} peak {peak:,.0f} B/event (target <= {TARGET_PEAK:,}; INFO used_memory, highest sample)")
    verdict = "PASS" if ok_retained else "FAIL"
    print(f"RESULT: {verdict} retained {retained:,.0f} B/event (target <= {TARGET_RETAINED:,}; the larger measure)")
    print(f"RESULT: {'PASS' if accepted else 'FAIL'} every event answered 200")
    return 0 if ok_peak and ok_retained and accepted else 1


if __name__ == "__main__":
    raise SystemExit(main())
