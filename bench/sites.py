"""Two Chargebee sites, one reactor: does a burst on site A hold back site B's write-offs?

    .venv/bin/python bench/sites.py [--burst 10000] [--b-events 100] [--interval 2] [--workers 2]
                                    [--a-rate-limit 600] [--b-rate-limit 3500]

bench/stack.py starts the reactor as the Procfile runs it (redis-server with AOF, the web under
gunicorn, `reactor worker` processes) with site A as the home site (its sandbox, its rate limit
--a-rate-limit calls a minute) and site B in REACTOR_SITES (a second sandbox process with its own
API key, its own limit). B receives one write-off candidate every --interval seconds, posted to
/webhooks/chargebee/site-b; twice:
  idle   A receives nothing;
  burst  --burst events for A's invoices are posted as fast as the web takes them, first, and keep
         A's workers at A's limit for the whole phase.
Per B event: the client's clock before its POST -> the B sandbox's record of its write_off call
(one machine, one clock). Target: B's p99 with the burst <= 2x B's p99 idle. A phase has 100 events
so that a p99 is not simply the slowest one (A's 10,000 events keep it at its limit for half an
hour: the whole burst phase).
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ingest import AUTH  # noqa: E402
from stack import ROOT, Stack, is_up, percentile, running_stack, seed_invoices, start_workers, wait_for  # noqa: E402
from workload import event_body  # noqa: E402

from reactor.local.redis_server import free_port  # noqa: E402
from reactor.sandbox.demo import _exhausted, demo_payment_failed_event  # noqa: E402

SITE_B = "site-b"
B_KEY = "test_bench_site_b_key"
B_USER, B_PASSWORD = "bench-b", "bench-b-secret"
B_AUTH = base64.b64encode(f"{B_USER}:{B_PASSWORD}".encode()).decode()
RATIO_TARGET = 2.0


def site_env(b_port: int, args: argparse.Namespace) -> dict[str, str]:
    return {
        "REACTOR_SITES": SITE_B,
        "REACTOR_SITE_SITE_B_API_KEY": B_KEY,
        "REACTOR_SITE_SITE_B_API_BASE": f"http://127.0.0.1:{b_port}/api/v2",
        "REACTOR_SITE_SITE_B_RATE_LIMIT": str(args.b_rate_limit),
        "REACTOR_SITE_SITE_B_WEBHOOK_USER": B_USER,
        "REACTOR_SITE_SITE_B_WEBHOOK_PASSWORD": B_PASSWORD,
    }


def events_for(invoices: list[dict[str, object]], prefix: str, now: int) -> list[bytes]:
    bodies = []
    for n, invoice in enumerate(invoices):
        event = demo_payment_failed_event(invoice, now)
        event["id"] = f"ev_{prefix}_{n}"
        bodies.append(event_body(event))
    return bodies


def post(session: requests.Session, url: str, auth: str, body: bytes) -> None:
    headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
    answer = session.post(url, data=body, headers=headers, timeout=30)
    if answer.status_code != 200:
        raise RuntimeError(f"the webhook answered {answer.status_code}: {answer.text[:200]}")


def b_latencies(control: str, posted: dict[str, float], timeout: float) -> list[float]:
    """ms from each B event's POST to B's sandbox answering its write_off, waiting for all of them."""
    written: dict[str, float] = {}

    def all_written() -> bool:
        calls = requests.get(f"{control}/calls", params={"method": "POST"}, timeout=60).json()["calls"]
        for call in calls:
            path = str(call["path"])
            if path.endswith("/write_off"):
                written.setdefault(path.removesuffix("/write_off").rsplit("/", 1)[-1], float(call["at"]))
        return all(invoice_id in written for invoice_id in posted)

    wait_for(all_written, timeout, "site B's write-offs")
    return [(written[i] - posted[i]) * 1000 for i in posted]


def phase(
    stack: Stack, b_control: str, b_bodies: list[tuple[str, bytes]], interval: float
) -> tuple[list[float], list[float]]:
    """Site B's events, one every `interval` s: (webhook -> write_off ms, the webhook's answer ms)."""
    url = f"{stack.webhook_url}/{SITE_B}"
    posted: dict[str, float] = {}
    answers: list[float] = []
    with requests.Session() as session:
        for invoice_id, body in b_bodies:
            posted[invoice_id] = time.time()
            started = time.perf_counter()
            post(session, url, B_AUTH, body)
            answers.append((time.perf_counter() - started) * 1000)
            time.sleep(interval)
    return b_latencies(b_control, posted, timeout=120), answers


def measure(args: argparse.Namespace, work: Path) -> dict[str, object]:
    b_port = free_port()
    extra = {**site_env(b_port, args), "REACTOR_WORKER_CLASS": args.worker_class}
    with running_stack(work, rate_limit=args.a_rate_limit, extra_env=extra) as stack:
        # site B's sandbox on the port its settings name
        cmd = [sys.executable, "-m", "reactor.sandbox", "--port", str(b_port), "--no-seed", "--api-key", B_KEY]
        with (stack.work / "logs" / "sandbox-b.log").open("ab") as out:
            stack.procs.append(subprocess.Popen(cmd, cwd=ROOT, env=stack.env, stdout=out, stderr=subprocess.STDOUT))
        b_control = f"http://127.0.0.1:{b_port}/_sandbox"
        wait_for(lambda: is_up(f"{b_control}/faults"), 30, "site B's sandbox")
        now = int(time.time())
        a_invoices = seed_invoices(
            stack,
            [_exhausted(300000 + i, f"cus_a_{i}", 500 + (i * 97) % 2000, "USD", now, 40) for i in range(args.burst)],
        )
        b_shapes = [_exhausted(300000 + i, f"cus_b_{i}", 700, "USD", now, 40) for i in range(2 * args.b_events)]
        b_stack = Stack(stack.work, stack.env, stack.conn, 0, b_control, stack.web_port)
        b_invoices = seed_invoices(b_stack, b_shapes)  # the same invoice ids as A's first ones
        b_bodies = [(str(i["id"]), body) for i, body in zip(b_invoices, events_for(b_invoices, "b", now), strict=True)]
        if args.per_site:  # `reactor worker --site NAME`: each site's queue has workers of its own
            reactor = str(Path(sys.executable).parent / "reactor")
            for site in ("default", SITE_B):
                command = [reactor, "worker", "--site", site, "--name", f"sites-{site}"]
                start_workers(stack, 1, f"sites-{site}", command)
        else:
            start_workers(stack, args.workers, "sites")

        idle, idle_answers = phase(stack, b_control, b_bodies[: args.b_events], args.interval)

        a_bodies = events_for(a_invoices, "a", now)
        burst_posted = threading.Event()

        def burst() -> None:
            with requests.Session() as session:
                for n, body in enumerate(a_bodies):
                    post(session, stack.webhook_url, AUTH, body)
                    if n == min(len(a_bodies) - 1, 1000):
                        burst_posted.set()
            burst_posted.set()

        sender = threading.Thread(target=burst, daemon=True)
        started = time.monotonic()
        sender.start()
        burst_posted.wait(300)
        busy, busy_answers = phase(stack, b_control, b_bodies[args.b_events :], args.interval)
        sender.join(600)
        elapsed = time.monotonic() - started
        a_calls = requests.get(f"{stack.sandbox_control}/calls", params={"method": "POST"}, timeout=120).json()
        a_written = len([c for c in a_calls["calls"] if str(c["path"]).endswith("/write_off")])
        left = stack.conn.llen("rq:queue:reactor") + stack.conn.zcard("rq:scheduled:reactor")
    return {
        "idle": idle,
        "burst": busy,
        "idle answer": idle_answers,
        "burst answer": busy_answers,
        "a_written": a_written,
        "a_left": left,
        "elapsed": elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=10_000, help="events for site A, posted at once")
    parser.add_argument("--b-events", type=int, default=100, help="site B events per phase")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between site B events")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="fork", choices=["fork", "simple"])
    parser.add_argument("--per-site", action="store_true", help="one `reactor worker --site NAME` per site instead")
    parser.add_argument("--a-rate-limit", type=int, default=600, help="site A's calls a minute")
    parser.add_argument("--b-rate-limit", type=int, default=3500, help="site B's calls a minute")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    result = measure(args, Path(tempfile.mkdtemp(prefix="reactor-bench-sites-")))
    load_after = os.getloadavg()
    workers = "1 per site (--site)," if args.per_site else f"{args.workers} shared"
    print(f"sites benchmark: site A {args.burst:,}-event burst at {args.a_rate_limit}/min, site B one event every "
          f"{args.interval:g} s ({args.b_events} a phase, {args.b_rate_limit}/min), {workers} {args.worker_class} "
          f"workers; {os.cpu_count()} cpus, load {load_before[0]:.2f} before, {load_after[0]:.2f} after")  # fmt: skip
    print(f"site A during the burst phase: {result['a_written']} written off, {result['a_left']} jobs still queued")
    print()
    print(f"{'site B webhook -> write_off':<30} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name in ("idle", "burst", "idle answer", "burst answer"):
        values: list[float] = result[name]  # type: ignore[assignment]
        label = f"A {name}" if "answer" not in name else f"  of which the webhook's answer, A {name.split()[0]}"
        print(f"{label:<30} {percentile(values, 50):>8.1f} {percentile(values, 99):>8.1f} {max(values):>8.1f}")
    idle_p99 = percentile(result["idle"], 99)  # type: ignore[arg-type]
    busy_p99 = percentile(result["burst"], 99)  # type: ignore[arg-type]
    ratio = busy_p99 / idle_p99 if idle_p99 else float("inf")
    passed = ratio <= RATIO_TARGET
    print()
    print(f"{'PASS' if passed else 'FAIL'}  B's p99 with A's burst / idle = {ratio:.2f} (target <= {RATIO_TARGET:g})")
    print(f"RESULT: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
