"""Drain benchmark: bursts through web -> Redis -> workers -> sandbox, per RQ worker class, with RQ's
own rate for trivial jobs on the same worker class as the baseline.

    .venv/bin/python bench/e2e.py [--events 10000] [--write-off-share 0.1] [--rate-limit 3500]
                                  [--workers 2] [--worker-class fork simple] [--py-spy FILE]

For each worker class, bench/stack.py starts the reactor as the Procfile runs it (redis-server
with AOF, the web under gunicorn, --workers `reactor worker` processes with REACTOR_WORKER_CLASS)
against the sandbox without latency, the shared Chargebee rate limit at --rate-limit calls a
minute (a live plan's 3,500 by default; 0 for none). Three phases, in the same run:

1. mixed burst: --events `payment_failed` events, each for its own exhausted-dunning sandbox invoice,
   posted as fast as the web takes them (16 connections); one in 1/--write-off-share is 5-25 USD and
   the shipped rules.yaml writes it off (a GET of the invoice and the write_off: two calls), the
   others are 30-100 USD and match no rule. Target: every event decided and every write-off done
   within 1.2x the time the rate limit imposes on those calls (10,000 events, 10%: 2,000 calls at
   3,500 a minute, 34.3 s, so 41 s), from the first POST to the last audit record;
2. non-matching burst: --events events that match no rule; target: drained at >= 300 events/s;
3. baseline: the reactor's workers stopped, --workers `rq worker` processes of RQ's own class of
   the same kind (`rq.worker.Worker` for fork, `rq.worker.SimpleWorker` for simple), with the
   scheduler as `reactor worker` runs it, drain --events trivial jobs (`math.floor(1.5)`, no result
   kept, as the reactor's evaluation jobs keep none): the most RQ itself drains on this machine.
   Reported: the reactor's non-matching rate as a ratio of it.

--py-spy FILE records one reactor worker (its work horses too) with py-spy during phase 2 of the
first worker class, as collapsed stacks (`pip install py-spy`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ingest import AUTH, children  # noqa: E402
from loadgen import run as send_events  # noqa: E402
from stack import NO_RATE_LIMIT, Stack, percentile, running_stack, seed_invoices, start_workers, stop, wait_for  # noqa: E402
from workload import event_body  # noqa: E402

from reactor.sandbox.demo import _exhausted, demo_payment_failed_event  # noqa: E402

RQ_CLASSES = {"fork": "rq.worker.Worker", "simple": "rq.worker.SimpleWorker"}
SLACK, NON_MATCHING_TARGET = 1.2, 300.0
CALLS_PER_WRITE_OFF = 2  # GET the fresh invoice, POST write_off


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB for a live process."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def process_cpu(pid: int) -> tuple[float, float]:
    """(own, reaped children's) user + system CPU seconds of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


class Meter:
    """CPU of each part and Redis commands, between two readings: what a burst cost per event."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.before = self.read()

    def read(self) -> dict[str, Any]:
        stack = self.stack
        workers = [process_cpu(w.pid) for w in stack.workers]
        # The scheduler RQ forks beside each worker lives as long as it does: counted while alive.
        scheduler = sum(process_cpu(pid)[0] for w in stack.workers for pid in children(w.pid))
        web = sum(process_cpu(pid)[0] for pid in children(stack.web_pid))
        stats = stack.conn.info("commandstats")
        return {
            "workers": sum(own for own, _ in workers) + scheduler,
            "work horses": sum(reaped for _, reaped in workers),
            "web": web,
            "redis": process_cpu(stack.redis_pid)[0],
            "sandbox": process_cpu(stack.sandbox_pid)[0],
            "commands": {name.removeprefix("cmdstat_"): v["calls"] for name, v in stats.items()},
        }

    def per_event(self, events: int) -> dict[str, Any]:
        after, before = self.read(), self.before
        cost: dict[str, Any] = {k: (after[k] - before[k]) / events * 1000 for k in after if k != "commands"}
        commands = {k: (n - before["commands"].get(k, 0)) / events for k, n in after["commands"].items()}
        cost["commands"] = {k: v for k, v in commands.items() if v >= 0.05}
        return cost


def burst_bodies(stack: Stack, first: int, count: int, share: float, label: str) -> list[bytes]:
    """`count` events for sandbox invoices numbered from `first`; a `share` of them written off."""
    now = int(time.time())
    every = round(1 / share) if share else 0
    shapes = []
    for i in range(count):
        amount = 500 + i % 2000 if every and i % every == 0 else 3000 + (i * 37) % 7000  # cents
        shapes.append(_exhausted(first + i, f"cus_{label}_{i}", amount, "USD", now, 40))
    bodies = []
    for n, invoice in enumerate(seed_invoices(stack, shapes)):
        event = demo_payment_failed_event(invoice, now)
        event["id"] = f"ev_{label}_{n}"
        bodies.append(event_body(event))
    return bodies


def drain(stack: Stack, bodies: list[bytes], label: str, args: argparse.Namespace) -> dict[str, Any]:
    """Post every body as fast as the web takes them; wait until each has its audit record."""
    last = stack.conn.xrevrange("reactor:audit", count=1)
    after = last[0][0].decode() if last else "0-0"
    wanted = stack.conn.xlen("reactor:audit") + len(bodies)
    sent_at: dict[str, float] = {}

    def body_for(i: int) -> tuple[str, bytes]:
        sent_at[f"ev_{label}_{i}"] = time.time()
        return f"ev_{label}_{i}", bodies[i]

    meter = Meter(stack)
    started = time.time()
    headers = {"Authorization": f"Basic {AUTH}"}
    posted = asyncio.run(
        send_events("127.0.0.1", stack.web_port, "/webhooks/chargebee", args.post_rate, len(bodies), body_for,
                    headers, connections=16)
    )  # fmt: skip
    ingest_s = time.time() - started
    wait_for(lambda: stack.conn.xlen("reactor:audit") >= wanted, args.timeout, f"every {label} event decided", 0.05)
    cost = meter.per_event(len(bodies))
    latencies, outcomes, last_ms = [], {}, 0
    for entry_id, fields in stack.conn.xrange("reactor:audit", min=f"({after}", count=len(bodies) * 2):
        outcome, event_id = fields.get(b"outcome", b"?").decode(), fields.get(b"event_id", b"").decode()
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        ms = int(entry_id.decode().split("-")[0])
        last_ms = max(last_ms, ms)
        if outcome == "written_off" and event_id in sent_at:
            latencies.append((ms / 1000 - sent_at[event_id]) * 1000)
    errors = posted.errors + sum(n for status, n in posted.statuses.items() if status != 200)
    return {"events": len(bodies), "total_s": last_ms / 1000 - started, "ingest_s": ingest_s, "errors": errors,
            "outcomes": outcomes, "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "cost": cost}  # fmt: skip


def profiled(stack: Stack, out: Path | None, seconds: float) -> subprocess.Popen[bytes] | None:
    """py-spy recording the first reactor worker and its work horses, or None."""
    if out is None:
        return None
    py_spy = Path(sys.executable).parent / "py-spy"
    cmd = [str(py_spy), "record", "--subprocesses", "--idle", "--format", "raw", "--rate", "200", "--duration",
           str(int(seconds)), "--output", str(out), "--pid", str(stack.workers[0].pid)]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def trivial_rate(stack: Stack, worker_class: str, args: argparse.Namespace) -> tuple[float, dict[str, Any]]:
    """Jobs/s of RQ's own workers of this class on jobs that do nothing, from enqueue to the last done,
    and what a job cost (Meter)."""
    stop(stack.workers)
    rq_cli = str(Path(sys.executable).parent / "rq")
    for n in range(args.workers):
        cmd = [rq_cli, "worker", "--url", stack.env["REDIS_URL"], "--worker-class", RQ_CLASSES[worker_class],
               "--with-scheduler", "--name", f"trivial-{worker_class}-{n}", "trivial"]  # fmt: skip
        start_workers(stack, 1, f"trivial-{n}", command=cmd)
    queue = Queue("trivial", connection=Redis.from_url(stack.env["REDIS_URL"]))
    jobs = [Queue.prepare_data("math.floor", (1.5,), result_ttl=0) for _ in range(args.events)]
    meter = Meter(stack)
    started = time.time()
    queue.enqueue_many(jobs)

    def done() -> bool:
        names = [f"rq:worker:trivial-{worker_class}-{n}" for n in range(args.workers)]
        return sum(int(stack.conn.hget(name, "successful_job_count") or 0) for name in names) >= args.events

    wait_for(done, args.timeout, "the trivial jobs", pause=0.02)
    return args.events / (time.time() - started), meter.per_event(args.events)


def one_class(worker_class: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    extra = {"REACTOR_WORKER_CLASS": worker_class}
    with running_stack(work / worker_class, rate_limit=args.rate_limit or NO_RATE_LIMIT, extra_env=extra) as stack:
        mixed = burst_bodies(stack, 100000, args.events, args.write_off_share, "mixed")
        plain = burst_bodies(stack, 300000, args.events, 0.0, "plain")
        start_workers(stack, args.workers, f"bench-{worker_class}")
        result: dict[str, Any] = {"class": worker_class, "load_before": os.getloadavg()[0]}
        result["mixed"] = drain(stack, mixed, "mixed", args)
        spy_file = args.py_spy.with_suffix(f".{worker_class}{args.py_spy.suffix}") if args.py_spy else None
        spy = profiled(stack, spy_file, args.profile_seconds)
        result["profile"], result["profiled_pid"] = spy_file, stack.workers[0].pid
        result["plain"] = drain(stack, plain, "plain", args)
        result["rss_mb"] = max(rss_kb(w.pid)[0] for w in stack.workers) / 1024
        result["trivial_per_s"], result["trivial"] = trivial_rate(stack, worker_class, args)
        result["load_after"] = os.getloadavg()[0]
        if spy is not None:
            spy.wait(args.profile_seconds + 30)
    return result


def print_bursts(results: list[dict[str, Any]]) -> None:
    print(f"{'class':<7} {'burst':<6} {'total s':>8} {'events/s':>9} {'ingest s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6}  outcomes")  # fmt: skip
    for r in results:
        for phase in ("mixed", "plain"):
            p = r[phase]
            outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(p["outcomes"].items()))
            print(f"{r['class']:<7} {phase:<6} {p['total_s']:>8.1f} {p['events'] / p['total_s']:>9,.0f} "
                  f"{p['ingest_s']:>9.1f} {p['p50_ms']:>8,.0f} {p['p99_ms']:>8,.0f} {p['errors']:>6}  "
                  f"{outcomes}")  # fmt: skip
        plain_rate = r["plain"]["events"] / r["plain"]["total_s"]
        print(f"{'':<7} RQ's {RQ_CLASSES[r['class']]} on trivial jobs: {r['trivial_per_s']:,.0f} jobs/s; the reactor's "
              f"non-matching rate is {plain_rate / r['trivial_per_s']:.0%} of it; worker RSS {r['rss_mb']:.0f} MB; "
              f"load average {r['load_before']:.2f} before, {r['load_after']:.2f} after")  # fmt: skip
    print("p50/p99: from the POST to the audit record after Chargebee's write_off answer (write-offs only)")
    print()
    print("per event: CPU ms of each part (workers: their own processes and RQ's scheduler; work horses: the")
    print("forked children that ran the jobs) and Redis commands, the six most called; trivial: RQ's own workers")
    for r in results:
        for phase in ("mixed", "plain", "trivial"):
            cost = r[phase] if phase == "trivial" else r[phase]["cost"]
            parts = ", ".join(f"{k} {cost[k]:.2f}" for k in ("web", "workers", "work horses", "redis", "sandbox"))
            top = sorted(cost["commands"].items(), key=lambda kv: -kv[1])
            commands = ", ".join(f"{k} {v:.1f}" for k, v in top[:6])
            print(f"{r['class']:<7} {phase:<6} {parts}; {sum(cost['commands'].values()):.1f} commands: {commands}")
    print()


def checks(results: list[dict[str, Any]], args: argparse.Namespace) -> bool:
    write_offs = round(args.events * args.write_off_share)
    limited = write_offs * CALLS_PER_WRITE_OFF / (args.rate_limit / 60) if args.rate_limit else 0.0
    ok = True
    for r in results:
        for phase in ("mixed", "plain"):
            ok = ok and r[phase]["errors"] == 0 and sum(r[phase]["outcomes"].values()) == r[phase]["events"]
        ok = ok and r["mixed"]["outcomes"].get("written_off", 0) == write_offs
        mixed_s, plain_rate = r["mixed"]["total_s"], r["plain"]["events"] / r["plain"]["total_s"]
        verdicts = [(f"mixed burst done within {SLACK}x the rate limit's {limited:.1f} s", f"{mixed_s:.1f} s",
                     mixed_s <= SLACK * limited if args.rate_limit else None),
                    (f"non-matching events drain at >= {NON_MATCHING_TARGET:g}/s", f"{plain_rate:,.0f}/s",
                     plain_rate >= NON_MATCHING_TARGET)]  # fmt: skip
        for name, value, passed in verdicts:
            verdict = "n/a " if passed is None else "PASS" if passed else "FAIL"
            print(f"{verdict}  {r['class']:<7} {name:<52} {value}")
            ok = ok and passed is not False
    print(f"RESULT: {'PASS' if ok else 'FAIL'} (the targets, every event decided once, every write-off done)")
    return ok


def profile_summary(path: Path, worker_pid: int, top: int = 12) -> None:
    """Where the recorded worker's main thread spent its wall time (py-spy --idle), and its work
    horses' (fork): the rq/ and reactor/ frames with the largest inclusive share."""
    samples: dict[str, Counter[str]] = {"worker": Counter(), "work horses": Counter()}
    totals: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if any("Thread._bootstrap" in f or "RQScheduler" in f for f in frames):
            continue  # RQ's listener thread and scheduler process: they wait beside the work
        role = "worker" if frames[0].startswith(f"process {worker_pid}:") else "work horses"
        totals[role] += int(count)
        for frame in dict.fromkeys(f.rsplit(":", 1)[0] + ")" for f in frames[1:] if "rq/" in f or "reactor/" in f):
            samples[role][frame] += int(count)
    for role, counter in samples.items():
        if not totals[role]:
            continue
        print(f"  {role}: {totals[role]:,} samples of the main thread")
        trunk = [f for f, n in counter.items() if n == max(counter.values())]  # the frames every sample has
        for frame, n in [(f, n) for f, n in counter.most_common() if f not in trunk][:top]:
            print(f"    {n / totals[role]:6.1%}  {frame}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--write-off-share", type=float, default=0.1)
    parser.add_argument("--rate-limit", type=int, default=3500, help="calls a minute for all workers; 0: none")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", nargs="+", default=["fork", "simple"], choices=["fork", "simple"])
    parser.add_argument("--post-rate", type=float, default=5000, help="POSTs per second offered to the web")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--py-spy", type=Path, help="record one worker during the non-matching burst")
    parser.add_argument("--profile-seconds", type=float, default=20)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="reactor-bench-e2e-"))
    results = [one_class(cls, args, work) for cls in args.worker_class]
    print(f"drain benchmark: {args.events:,} events a burst, {args.write_off_share:.0%} written off in the mixed "
          f"burst, {args.workers} workers, rate limit {args.rate_limit or 'none'}/min, sandbox without latency; "
          f"{os.cpu_count()} cpus")  # fmt: skip
    print()
    print_bursts(results)
    for r in results:
        if r.get("profile"):
            print(f"py-spy, {r['class']} worker, non-matching burst ({r['profile']}):")
            profile_summary(r["profile"], r["profiled_pid"])
    print()
    return 0 if checks(results, args) else 1


if __name__ == "__main__":
    raise SystemExit(main())
