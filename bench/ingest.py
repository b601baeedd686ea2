"""Ingest benchmark: the webhook endpoint under gunicorn against two bare Flask endpoints, in one run.

    .venv/bin/python bench/ingest.py [--seconds 10] [--connections 16] [--rate 1000] [--runs 3]

Starts a real redis-server (AOF on, as `reactor run` does), the reactor's web app and the two
baselines of bench/bare_app.py under gunicorn with the same settings (reactor.gunicorn_conf:
WEB_CONCURRENCY gevent workers, WEB_CONNECTIONS connections each), then on loopback:

1. throughput, --runs rounds: in each, wrk (apt-get install wrk) for --seconds against bare Flask,
   bare Flask + one Redis SET of the body, and the reactor, one after the other; realistic 2.5 kB
   events with unique ids and Basic auth (bench/ingest.lua). The second baseline is the floor
   of any design that stores the event in Redis before answering; target: the reactor >= 60% of
   it, the median of the rounds' ratios. The CPU each run cost the gunicorn workers and
   redis-server, per request, is read from /proc;
2. latency at a fixed rate: each server at --rate requests/s for --seconds (bench/loadgen.py,
   latency from the intended send time); target: the reactor's p99 <= 15 ms, where bare Flask
   sustains the rate (every request answered, p99 within the same 15 ms);
3. every answer must be 200, and every event answered "queued" must be waiting for a worker: in
   the inbox (REACTOR_TRIAGE, the default) or, with REACTOR_TRIAGE=0, as a job in the RQ queue.

With --replica, Redis gets a replica (a second redis-server, replicating over loopback), so the
reactor's accept waits for it to confirm each event (`WAIT 1`, REACTOR_REPLICA_ACK=auto), and one
more wrk run in each round against a reactor with REACTOR_REPLICA_ACK=off on the same pair shows
what the wait costs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from loadgen import run as fixed_rate  # noqa: E402
from workload import event_body, make_events  # noqa: E402

from reactor.local.redis_server import EmbeddedRedis, free_port  # noqa: E402

USER, PASSWORD = "bench", "bench-secret"
AUTH = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
RATIO_TARGET, P99_TARGET_MS = 0.60, 15.0
SERVERS = {
    "bare": "bare Flask",
    "stored": "bare Flask + one Redis SET",
    "reactor": "reactor webhook",
    "no_ack": "reactor, REACTOR_REPLICA_ACK=off",  # with --replica only
}


def gunicorn(app: str, port: int, env: dict[str, str], log: Path, extra: list[str] = ()) -> subprocess.Popen[bytes]:
    bin_dir = Path(sys.executable).parent
    cmd = [str(bin_dir / "gunicorn"), "-c", "python:reactor.gunicorn_conf", *extra, app]
    proc_env = {**env, "PORT": str(port), "HOST": "127.0.0.1"}
    with log.open("ab") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=proc_env, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(port: int, body: bytes, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = requests.post(
                f"http://127.0.0.1:{port}/webhooks/chargebee",
                data=body,
                headers={"Authorization": f"Basic {AUTH}", "Content-Type": "application/json"},
                timeout=2,
            )
            if r.status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not come up")


def wrk(port: int, seconds: int, connections: int, template: Path, prefix: str) -> dict[str, Any]:
    env = {**os.environ, "BENCH_EVENT_FILE": str(template), "BENCH_BASIC_AUTH": AUTH, "BENCH_ID_PREFIX": prefix}
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(HERE / "ingest.lua")]
    out = subprocess.run([*cmd, f"http://127.0.0.1:{port}/"], env=env, capture_output=True, text=True, check=True)
    match = re.search(r"^BENCH (\{.*\})$", out.stdout, re.M)
    if not match:
        raise RuntimeError(f"wrk gave no summary:\n{out.stdout}\n{out.stderr}")
    data = json.loads(match.group(1))
    data["rps"] = data["requests"] / data["seconds"]
    data["errors"] = sum(data[k] for k in ("non_200", "connect_errors", "read_errors", "write_errors", "timeouts"))
    return data


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far, from /proc (Linux)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return found


def measured_wrk(
    port: int, master: subprocess.Popen[bytes], redis_pid: int, args: argparse.Namespace, template: Path, prefix: str
) -> dict[str, Any]:
    """wrk against one server, with the CPU its gunicorn workers and redis-server spent per request."""
    workers = children(master.pid)
    web_before, redis_before = cpu_seconds(workers), cpu_seconds([redis_pid])
    data = wrk(port, args.seconds, args.connections, template, prefix)
    data["web_us"] = (cpu_seconds(workers) - web_before) / data["requests"] * 1e6
    data["redis_us"] = (cpu_seconds([redis_pid]) - redis_before) / data["requests"] * 1e6
    data["load"] = os.getloadavg()[0]
    return data


def start_replica(primary: EmbeddedRedis, work: Path, timeout: float = 30.0) -> EmbeddedRedis:
    """A second redis-server replicating `primary`, synced before this returns."""
    replica = EmbeddedRedis(work / "replica").start()
    primary.client().config_set("repl-diskless-sync-delay", 0)
    replica.client().replicaof("127.0.0.1", primary.port)
    deadline = time.monotonic() + timeout
    while replica.client().info("replication")["master_link_status"] != "up":
        if time.monotonic() > deadline:
            raise RuntimeError("the replica did not sync")
        time.sleep(0.1)
    return replica


def queued_jobs(conn: redis.Redis) -> int:
    """Events waiting for a worker: in the inbox, and evaluation jobs in the queue (REACTOR_TRIAGE=0)."""
    jobs = conn.lrange("rq:queue:reactor", 0, -1)
    return conn.llen("reactor:inbox") + sum(1 for j in jobs if j.startswith(b"evaluate-"))


def waiting_ids(conn: redis.Redis) -> set[str]:
    inbox = {i.decode() for i in conn.lrange("reactor:inbox", 0, -1)}
    jobs = {j.decode().removeprefix("evaluate-") for j in conn.lrange("rq:queue:reactor", 0, -1)}
    return inbox | jobs


def throughput_round(
    servers: dict[str, tuple[int, subprocess.Popen[bytes]]],
    conn: redis.Redis,
    redis_pid: int,
    args: argparse.Namespace,
    template: Path,
    n: int,
) -> dict[str, dict[str, Any]]:
    """One wrk run against each server, one after the other; the reactor's queue checked against
    its "queued" answers."""
    runs = {}
    for label, (port, master) in servers.items():
        conn.flushall()
        runs[label] = measured_wrk(port, master, redis_pid, args, template, f"ev_{label}_{n}")
        if label == "reactor":  # before the next server's run can add jobs
            ours, in_queue = runs[label], queued_jobs(conn)
            # wrk stops counting at its deadline: answers still in flight were enqueued but not counted.
            ours["in_queue"] = in_queue
            ours["lost"] = not (ours["queued"] <= in_queue <= ours["queued"] + args.connections)
    return runs


def rate_round(
    servers: dict[str, tuple[int, subprocess.Popen[bytes]]],
    conn: redis.Redis,
    args: argparse.Namespace,
    event: dict[str, Any],
) -> dict[str, Any]:
    """Each server at the fixed rate (bench/loadgen.py); the reactor's answers checked by id."""
    count = int(args.rate * args.seconds)
    headers = {"Authorization": f"Basic {AUTH}"}
    runs: dict[str, Any] = {}
    for label, (port, _master) in servers.items():
        conn.flushall()
        bodies = [event_body({**event, "id": f"ev_rate_{label}_{i}"}) for i in range(count)]
        runs[label] = asyncio.run(
            fixed_rate("127.0.0.1", port, "/webhooks/chargebee", args.rate, count,
                       lambda i, bodies=bodies, label=label: (f"ev_rate_{label}_{i}", bodies[i]), headers)
        )  # fmt: skip
        runs[label].load = os.getloadavg()[0]
    waiting = waiting_ids(conn)
    ours = runs["reactor"]
    ours.missing = [i for i in ours.queued_ids if i not in waiting]
    return runs


def run_all(args: argparse.Namespace, work: Path) -> tuple[list[dict[str, dict[str, Any]]], dict[str, Any], int]:
    """Start the three servers, run --runs throughput rounds and one fixed-rate round."""
    event = make_events(1)[0]
    template = work / "event.json"
    template.write_bytes(event_body({**event, "id": "__ID__"}))
    ready_body = event_body({**event, "id": "ev_ready"})
    server = EmbeddedRedis(work / "redis").start()
    replica = start_replica(server, work) if args.replica else None
    conn = server.client()
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "REACTOR_WEBHOOK_USER": USER,
        "REACTOR_WEBHOOK_PASSWORD": PASSWORD,
        "REACTOR_RULES": str(ROOT / "rules.yaml"),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    bench_path = ["--pythonpath", str(HERE)]
    ports = {label: free_port() for label in SERVERS}
    procs = {
        "bare": gunicorn("bare_app:app", ports["bare"], env, work / "bare-web.log", bench_path),
        "stored": gunicorn("bare_app:stored_app", ports["stored"], env, work / "stored-web.log", bench_path),
        "reactor": gunicorn("reactor.web:create_app()", ports["reactor"], env, work / "reactor-web.log"),
    }
    if replica:
        no_ack_env = {**env, "REACTOR_REPLICA_ACK": "off"}
        procs["no_ack"] = gunicorn("reactor.web:create_app()", ports["no_ack"], no_ack_env, work / "no-ack-web.log")
    servers = {label: (ports[label], procs[label]) for label in SERVERS if label in procs}
    try:
        for port, _master in servers.values():
            wait_ready(port, ready_body)
        redis_pid = server.process.pid if server.process else 0
        rounds = [throughput_round(servers, conn, redis_pid, args, template, n) for n in range(args.runs)]
        fixed = rate_round({k: v for k, v in servers.items() if k != "no_ack"}, conn, args, event)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if replica:
            replica.stop()
        server.stop()
    return rounds, fixed, len(ready_body)


def print_tables(rounds: list[dict[str, dict[str, Any]]], fixed: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"{'run':<54} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>6} "
          f"{'web us/req':>10} {'redis us/req':>12} {'load':>5}")  # fmt: skip
    for n, runs in enumerate(rounds, 1):
        for label, run in runs.items():
            name = f"{SERVERS[label]}, wrk {args.seconds} s, round {n}"
            print(f"{name:<54} {run['rps']:>7,.0f} {run['p50_ms']:>7.2f} {run['p99_ms']:>7.2f} "
                  f"{run['max_ms']:>7.1f} {run['errors']:>6} {run['web_us']:>10,.0f} {run['redis_us']:>12,.0f} "
                  f"{run['load']:>5.2f}")  # fmt: skip
    for label, run in fixed.items():
        name = f"{SERVERS[label]}, fixed {args.rate:,.0f}/s x {args.seconds} s"
        errors = run.errors + sum(n for status, n in run.statuses.items() if status != 200)
        print(f"{name:<54} {len(run.latencies_ms) / run.seconds:>7,.0f} {run.percentile(50):>7.2f} "
              f"{run.percentile(99):>7.2f} {max(run.latencies_ms, default=0):>7.1f} {errors:>6} "
              f"{'':>10} {'':>12} {run.load:>5.2f}")  # fmt: skip
    print()
    for n, runs in enumerate(rounds, 1):
        stored, bare = runs["stored"]["rps"], runs["bare"]["rps"]
        print(f"round {n}: bare Flask + one Redis SET reaches {stored / bare:.0%} of bare Flask; "
              f"the reactor reaches {runs['reactor']['rps'] / stored:.0%} of that, {runs['reactor']['rps'] / bare:.0%} "
              f"of bare Flask")  # fmt: skip
        if "no_ack" in runs:
            no_ack, ours = runs["no_ack"], runs["reactor"]
            p50, p99 = ours["p50_ms"] - no_ack["p50_ms"], ours["p99_ms"] - no_ack["p99_ms"]
            print(f"round {n}: waiting for the replica: {ours['rps'] / no_ack['rps']:.0%} of the req/s without, "
                  f"p50 {p50:+.2f} ms, p99 {p99:+.2f} ms")  # fmt: skip
    print()


def checks(rounds: list[dict[str, dict[str, Any]]], fixed: dict[str, Any], args: argparse.Namespace) -> list[Any]:
    ratio = statistics.median(r["reactor"]["rps"] / r["stored"]["rps"] for r in rounds)
    ours, bare = fixed["reactor"], fixed["bare"]
    p99, bare_p99 = ours.percentile(99), bare.percentile(99)
    count = int(args.rate * args.seconds)
    sustained = len(bare.latencies_ms) == count and bare_p99 <= P99_TARGET_MS
    wrk_errors = sum(r["reactor"]["errors"] for r in rounds)
    fixed_errors = ours.errors + sum(n for status, n in ours.statuses.items() if status != 200)
    lost = [n for n, r in enumerate(rounds, 1) if r["reactor"]["lost"]]
    return [
        (f"reactor req/s >= {RATIO_TARGET:.0%} of bare + one SET (median of {len(rounds)})", f"{ratio:.0%}",
         ratio >= RATIO_TARGET),
        (f"bare Flask sustains {args.rate:,.0f} req/s (p99 <= {P99_TARGET_MS:g} ms)",
         f"p99 {bare_p99:.2f} ms", sustained),
        (f"p99 at {args.rate:,.0f} req/s <= {P99_TARGET_MS:g} ms", f"{p99:.2f} ms", p99 <= P99_TARGET_MS),
        ("zero errors (non-200, socket errors)", f"{wrk_errors + fixed_errors}", wrk_errors + fixed_errors == 0),
        ("every 'queued' answer is waiting for a worker (wrk)",
         ", ".join(f"{r['reactor']['queued']}/{r['reactor']['in_queue']}" for r in rounds), not lost),
        ("every 'queued' answer is waiting for a worker (by id)",
         f"{len(ours.queued_ids)} answered, {len(ours.missing)} missing",
         not ours.missing and len(ours.queued_ids) == count),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="throughput rounds; the ratio is their median")
    parser.add_argument("--replica", action="store_true", help="give Redis a replica: the accept waits for it")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="reactor-bench-ingest-"))
    load = os.getloadavg()
    rounds, fixed, body_size = run_all(args, work)
    workers, connections = os.environ.get("WEB_CONCURRENCY", "2"), os.environ.get("WEB_CONNECTIONS", "1000")
    print(
        f"ingest benchmark: gunicorn gevent {workers} workers x {connections} connections, loopback, "
        f"wrk -t2 -c{args.connections}; {os.cpu_count()} cpus; event body {body_size} bytes; "
        f"load average {load[0]:.2f} before"
        + ("; Redis with one replica, the reactor's accept waits for it (WAIT 1)" if args.replica else "")
    )
    print()
    print_tables(rounds, fixed, args)
    results = checks(rounds, fixed, args)
    for name, value, ok in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name:<62} {value}")
    passed = all(ok for _, _, ok in results)
    print(f"RESULT: {'PASS' if passed else 'FAIL'}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
