"""Latency on an idle reactor: from the webhook's receipt of an event to the write_off call.

    .venv/bin/python bench/latency.py [--events 200] [--gap-ms 100 200] [--workers 2] [--rate-limit 3500]

bench/stack.py starts the reactor as the Procfile runs it (redis-server with AOF, the web under
gunicorn, `reactor worker` processes of REACTOR_WORKER_CLASS, fork by default) against the sandbox
without latency. Each of --events `payment_failed` events, for its own exhausted-dunning invoice of
5-25 USD that the shipped rules.yaml writes off, is posted alone, a random 100-200 ms (seeded)
after the previous one was answered: the reactor is idle when it arrives. The Chargebee rate limit
is a live plan's 3,500 calls a minute, which 200 events spaced so never reach.

Per event, on the one clock of the machine:
  receipt    the accept script's receipt in the invoice's trace (the web's clock, ms)
  retrieve   the sandbox's record of the GET of the fresh invoice (stamped as it answers)
  write_off  the sandbox's record of the POST .../write_off (stamped as it answers)
Reported: receipt -> write_off p50/p95/p99/max, split at the retrieve; the web's answer time as
the client saw it. Targets: p50 <= 300 ms, p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ingest import AUTH  # noqa: E402
from stack import Stack, percentile, running_stack, sandbox_calls, seed_invoices, start_workers, wait_for  # noqa: E402
from workload import event_body  # noqa: E402

from reactor.jobs.trace.store import TraceLog  # noqa: E402
from reactor.keys import Keys  # noqa: E402
from reactor.sandbox.demo import _exhausted, demo_payment_failed_event  # noqa: E402

P50_TARGET_MS, P99_TARGET_MS = 300.0, 1000.0


def post_spaced(stack: Stack, events: list[bytes], gap_ms: tuple[float, float], seed: int) -> list[float]:
    """Post each event alone after a random gap; returns the answer times (ms) seen by the client."""
    rng = random.Random(seed)
    answers = []
    headers = {"Authorization": f"Basic {AUTH}", "Content-Type": "application/json"}
    with requests.Session() as session:
        for body in events:
            time.sleep(rng.uniform(*gap_ms) / 1000)
            started = time.perf_counter()
            answer = session.post(stack.webhook_url, data=body, headers=headers, timeout=10)
            answers.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 200 or answer.json().get("status") != "queued":
                raise RuntimeError(f"the webhook answered {answer.status_code}: {answer.text[:200]}")
    return answers


def receipt_times(stack: Stack, invoice_ids: list[str]) -> dict[str, float]:
    """Invoice id -> epoch seconds of its event's receipt, from the trace the accept script writes."""
    trace = TraceLog(stack.conn, Keys("reactor"))
    found = {}
    for invoice_id in invoice_ids:
        receipts = [e for e in trace.entries(invoice_id) if e.get("kind") == "receipt"]
        if receipts:
            found[invoice_id] = datetime.fromisoformat(receipts[0]["at"]).timestamp()
    return found


def call_times(stack: Stack, method: str, suffix: str) -> dict[str, float]:
    """Invoice id -> epoch seconds at which the sandbox answered its first call of this kind."""
    found: dict[str, float] = {}
    for call in sandbox_calls(stack, method=method, path_contains="/invoices/"):
        path = str(call["path"])
        if path.endswith(suffix):
            invoice_id = path.removesuffix(suffix).rsplit("/", 1)[-1]
            found.setdefault(invoice_id, float(call["at"]))  # type: ignore[arg-type]
    return found


def measure(args: argparse.Namespace, work: Path) -> dict[str, list[float]]:
    extra = {"REACTOR_WORKER_CLASS": args.worker_class}
    with running_stack(work, rate_limit=args.rate_limit, extra_env=extra) as stack:
        now = int(time.time())
        shapes = [
            _exhausted(200000 + i, f"cus_lat_{i}", 500 + (i * 97) % 2000, "USD", now, 40) for i in range(args.events)
        ]
        invoices = seed_invoices(stack, shapes)
        bodies = []
        for n, invoice in enumerate(invoices):
            event = demo_payment_failed_event(invoice, now)
            event["id"] = f"ev_lat_{n}"
            bodies.append(event_body(event))
        start_workers(stack, args.workers, "latency")
        answered = post_spaced(stack, bodies, tuple(args.gap_ms), args.seed)
        wait_for(lambda: stack.conn.xlen("reactor:audit") >= len(bodies), 120, "every event to be decided")
        ids = [str(invoice["id"]) for invoice in invoices]
        receipts = receipt_times(stack, ids)
        retrieved = call_times(stack, "GET", "")
        written = call_times(stack, "POST", "/write_off")
    missing = [i for i in ids if i not in receipts or i not in written or i not in retrieved]
    if missing:
        raise RuntimeError(f"{len(missing)} invoices without a receipt, retrieve or write_off, e.g. {missing[:3]}")
    return {
        "receipt -> write_off": [(written[i] - receipts[i]) * 1000 for i in ids],
        "receipt -> retrieve": [(retrieved[i] - receipts[i]) * 1000 for i in ids],
        "retrieve -> write_off": [(written[i] - retrieved[i]) * 1000 for i in ids],
        "webhook answer (client)": answered,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, nargs=2, default=[100.0, 200.0], metavar=("MIN", "MAX"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="fork", choices=["fork", "simple"])
    parser.add_argument("--rate-limit", type=int, default=3500, help="REACTOR_CHARGEBEE_RATE_LIMIT, calls a minute")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    spans = measure(args, Path(tempfile.mkdtemp(prefix="reactor-bench-latency-")))
    load_after = os.getloadavg()

    print(f"latency benchmark: {args.events} events, {args.gap_ms[0]:g}-{args.gap_ms[1]:g} ms apart, "
          f"{args.workers} {args.worker_class} workers, rate limit {args.rate_limit:,}/min; {os.cpu_count()} cpus, "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")  # fmt: skip
    print("sandbox without latency; every time on the machine's one clock")
    print()
    print(f"{'span':<26} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in spans.items():
        row = " ".join(f"{percentile(values, p):>8.1f}" for p in (50, 95, 99))
        print(f"{name:<26} {row} {max(values):>8.1f}")
    print()
    total = spans["receipt -> write_off"]
    p50, p99 = percentile(total, 50), percentile(total, 99)
    checks = [(f"p50 <= {P50_TARGET_MS:g} ms", p50, p50 <= P50_TARGET_MS),
              (f"p99 <= {P99_TARGET_MS:g} ms", p99, p99 <= P99_TARGET_MS)]  # fmt: skip
    for name, value, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  receipt -> write_off {name:<16} {value:.1f} ms")
    passed = all(ok for _, _, ok in checks)
    print(f"RESULT: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
