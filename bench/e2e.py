"""End-to-end benchmark: events through web -> Redis -> 2 workers -> sandbox write_off, per RQ worker class.

    .venv/bin/python bench/e2e.py [--events 10000] [--workers 2] [--worker-class fork simple]

For each worker class: a real redis-server (AOF on), the reactor web under gunicorn, the sandbox
(no latency, no faults) holding one exhausted-dunning invoice per event, `reactor worker` processes
with REACTOR_WORKER_CLASS set and the shared Chargebee rate limit out of the way; then every event
(a `payment_failed` that the shipped rules.yaml writes off) is posted as fast as the web takes them.

Reported: events/s from the first POST to the last write_off; latency from the POST to the audit
record that follows Chargebee's write_off answer (p50, p99); Redis memory per event (all that the
run leaves: event, dedupe mark, job, audit record, written-off mark); the workers' peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from ingest import AUTH, PASSWORD, USER, gunicorn  # noqa: E402
from loadgen import run as send_events  # noqa: E402
from workload import event_body  # noqa: E402

from reactor.local.redis_server import EmbeddedRedis, free_port  # noqa: E402
from reactor.sandbox.demo import _exhausted, demo_payment_failed_event  # noqa: E402
from reactor.sandbox.state import DEMO_API_KEY  # noqa: E402


def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB for a live process."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def one_run(worker_class: str, args: argparse.Namespace, work: Path) -> dict[str, float | int | str]:
    run_dir = work / worker_class
    server = EmbeddedRedis(run_dir / "redis").start()
    conn = server.client()
    sandbox_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "REACTOR_WEBHOOK_USER": USER,
        "REACTOR_WEBHOOK_PASSWORD": PASSWORD,
        "REACTOR_RULES": str(ROOT / "rules.yaml"),
        "CHARGEBEE_API_BASE": f"http://127.0.0.1:{sandbox_port}/api/v2",
        "CHARGEBEE_API_KEY": DEMO_API_KEY,
        "REACTOR_CHARGEBEE_RATE_LIMIT": "100000000",  # "no rate limit" for this benchmark
        "REACTOR_WORKER_CLASS": worker_class,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    sandbox_cmd = [sys.executable, "-m", "reactor.sandbox", "--port", str(sandbox_port), "--no-seed"]
    with (logs / "sandbox.log").open("ab") as out:
        procs.append(subprocess.Popen(sandbox_cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
    procs.append(gunicorn("reactor.web:create_app()", web_port, env, logs / "web.log"))
    workers: list[subprocess.Popen[bytes]] = []
    try:
        control = f"http://127.0.0.1:{sandbox_port}/_sandbox"
        wait_for(lambda: _up(f"{control}/faults"), 30, "the sandbox")
        wait_for(lambda: _up(f"http://127.0.0.1:{web_port}/healthz"), 30, "the web")
        now = int(time.time())
        invoices = []
        for start in range(0, args.events, 1000):
            batch = [
                _exhausted(100000 + i, f"cus_e2e_{i}", 500 + i % 2000, "USD", now, 40)
                for i in range(start, min(start + 1000, args.events))
            ]
            invoices += requests.post(f"{control}/invoices", json=batch, timeout=60).json()["invoices"]
        events = []
        for n, invoice in enumerate(invoices):
            event = demo_payment_failed_event(invoice, now)
            event["id"] = f"ev_e2e_{n}"
            events.append(event_body(event))
        conn.flushall()
        baseline = conn.info("memory")["used_memory"]

        for n in range(args.workers):
            with (logs / f"worker-{n}.log").open("ab") as out:
                cmd = [str(Path(sys.executable).parent / "reactor"), "worker", "--name", f"bench-{worker_class}-{n}"]
                workers.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
        wait_for(lambda: conn.scard("rq:workers") >= args.workers, 60, "the workers to register")

        sent_at: dict[str, float] = {}

        def body_for(i: int) -> tuple[str, bytes]:
            sent_at[f"ev_e2e_{i}"] = time.time()
            return f"ev_e2e_{i}", events[i]

        started = time.time()
        posted = asyncio.run(
            send_events("127.0.0.1", web_port, "/webhooks/chargebee", args.post_rate, len(events), body_for,
                        {"Authorization": f"Basic {AUTH}"}, connections=16)
        )  # fmt: skip
        posted_at = time.time()
        wait_for(lambda: conn.xlen("reactor:audit") >= len(events), args.timeout, "every event to be decided")
        rss = [rss_kb(w.pid) for w in workers]

        latencies, outcomes = [], {}
        last_ms = 0
        for entry_id, fields in conn.xrange("reactor:audit", count=len(events) * 2):
            record = {k.decode(): v.decode() for k, v in fields.items()}
            outcome = record.get("outcome", "?")
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            ms = int(entry_id.decode().split("-")[0])
            last_ms = max(last_ms, ms)
            if outcome == "written_off" and record.get("event_id") in sent_at:
                latencies.append((ms / 1000 - sent_at[record["event_id"]]) * 1000)
        used = conn.info("memory")["used_memory"] - baseline
        by_kind = key_memory(conn)
        calls = len(requests.get(f"{control}/calls", timeout=60).json()["calls"])
    finally:
        for proc in workers + procs:
            proc.send_signal(signal.SIGTERM)
        for proc in workers + procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.stop()
    return {
        "class": worker_class,
        "events": len(events),
        "post_errors": posted.errors + sum(n for s, n in posted.statuses.items() if s != 200),
        "ingest_s": posted_at - started,
        "total_s": last_ms / 1000 - started,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "written_off": outcomes.get("written_off", 0),
        "outcomes": ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
        "bytes_per_event": used / len(events),
        "rss_mb": max(r[0] for r in rss) / 1024,
        "hwm_mb": max(r[1] for r in rss) / 1024,
        "sandbox_calls": calls,
        "by_kind": ", ".join(f"{k} {v / len(events):,.0f}" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])),
    }


def key_memory(conn: redis.Redis) -> dict[str, int]:
    """MEMORY USAGE summed per kind of key (ids replaced by *), to see what an event costs."""
    totals: dict[str, int] = {}
    keys = list(conn.scan_iter(count=1000))
    with conn.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        sizes = pipe.execute()
    for key, size in zip(keys, sizes, strict=True):
        kind = re.sub(r"(ev|inv|evaluate|cus)[-_][A-Za-z0-9_-]+", r"\1-*", key.decode())
        kind = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27,}", "*", kind)
        totals[kind] = totals.get(kind, 0) + (size or 0)
    return {k: v for k, v in totals.items() if v >= 10_000}


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", nargs="+", default=["fork", "simple"], choices=["fork", "simple"])
    parser.add_argument("--post-rate", type=float, default=5000, help="POSTs per second offered to the web")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="reactor-bench-e2e-"))
    results = [one_run(cls, args, work) for cls in args.worker_class]

    load = os.getloadavg()
    print(f"end-to-end benchmark: {args.events:,} payment_failed events, {args.workers} workers, sandbox without")
    print(f"latency or rate limit; {os.cpu_count()} cpus, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print()
    head = (
        f"{'worker class':<13} {'events/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'B/event':>8} {'RSS MB':>7} {'peak MB':>8}"
    )
    print(head + "  ingest s  errors")
    ok = True
    for r in results:
        print(
            f"{r['class']:<13} {r['events'] / r['total_s']:>9,.0f} {r['p50_ms']:>9,.0f} {r['p99_ms']:>9,.0f} "
            f"{r['bytes_per_event']:>8,.0f} {r['rss_mb']:>7.0f} {r['hwm_mb']:>8.0f}  {r['ingest_s']:>8.1f}  "
            f"{r['post_errors']:>6}"
        )
        complete = r["written_off"] == r["events"] and r["post_errors"] == 0
        ok = ok and complete
        print(f"{'':<13} outcomes: {r['outcomes']}; sandbox calls {r['sandbox_calls']:,}")
        print(f"{'':<13} Redis bytes per event by key: {r['by_kind']}")
    print()
    print("latency: from the POST to the audit record written after Chargebee's write_off answer;")
    print("B/event: Redis used_memory after the run minus before, per event; RSS: worker main processes.")
    print(f"RESULT: {'PASS' if ok else 'FAIL'} (every event written off exactly once, no ingest errors)")
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"logs kept in {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
