"""Ingest benchmark: the webhook endpoint under gunicorn against a bare Flask endpoint, in one run.

    .venv/bin/python bench/ingest.py [--seconds 10] [--connections 16] [--rate 1000]

Starts a real redis-server (AOF on, as `reactor run` does), the reactor's web app and the two
baselines of bench/bare_app.py under gunicorn with the same settings (reactor.gunicorn_conf:
WEB_CONCURRENCY gevent workers, WEB_CONNECTIONS connections each), then on loopback:

1. throughput: wrk (apt-get install wrk) for --seconds against each, realistic 2.5 kB events with
   unique ids and Basic auth (bench/ingest.lua); target: reactor >= 60% of the bare requests/s.
   The second baseline (bare + one Redis SET of the body) shows the most that any design which
   stores the event in Redis before answering can reach on this machine. The CPU each run cost
   the gunicorn workers and redis-server, per request, is read from /proc;
2. latency at a fixed rate: --rate requests/s for --seconds (bench/loadgen.py, latency from the
   intended send time); target: p99 <= 15 ms;
3. every answer must be 200, and every event answered "queued" must be in the RQ queue.

With --replica, Redis gets a replica (a second redis-server, replicating over loopback), so the
reactor's accept waits for it to confirm each event (`WAIT 1`, REACTOR_REPLICA_ACK=auto), and one
more wrk run against a reactor with REACTOR_REPLICA_ACK=off on the same pair shows what the wait
costs.
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
    return conn.llen("rq:queue:reactor")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--replica", action="store_true", help="give Redis a replica: the accept waits for it")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="reactor-bench-ingest-"))
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
    reactor_port, bare_port, stored_port = free_port(), free_port(), free_port()
    bench_path = ["--pythonpath", str(HERE)]
    procs = [
        gunicorn("reactor.web:create_app()", reactor_port, env, work / "reactor-web.log"),
        gunicorn("bare_app:app", bare_port, env, work / "bare-web.log", bench_path),
        gunicorn("bare_app:stored_app", stored_port, env, work / "stored-web.log", bench_path),
    ]
    no_ack_port = free_port()
    if replica:
        no_ack_env = {**env, "REACTOR_REPLICA_ACK": "off"}
        procs.append(gunicorn("reactor.web:create_app()", no_ack_port, no_ack_env, work / "reactor-no-ack-web.log"))
    try:
        for port in (reactor_port, bare_port, stored_port, *((no_ack_port,) if replica else ())):
            wait_ready(port, ready_body)
        conn.flushall()
        redis_pid = server.process.pid if server.process else 0

        bare = measured_wrk(bare_port, procs[1], redis_pid, args, template, "ev_bare")
        stored = measured_wrk(stored_port, procs[2], redis_pid, args, template, "ev_stored")
        if replica:
            conn.flushall()
            no_ack = measured_wrk(no_ack_port, procs[3], redis_pid, args, template, "ev_no_ack")
        conn.flushall()
        ours = measured_wrk(reactor_port, procs[0], redis_pid, args, template, "ev_wrk")
        in_queue = queued_jobs(conn)
        # wrk stops counting at its deadline: answers still in flight were enqueued but not counted.
        wrk_lost = not (ours["queued"] <= in_queue <= ours["queued"] + args.connections)

        conn.flushall()
        count = int(args.rate * args.seconds)
        bodies = [event_body({**event, "id": f"ev_rate_{i}"}) for i in range(count)]
        headers = {"Authorization": f"Basic {AUTH}"}
        fixed = asyncio.run(
            fixed_rate("127.0.0.1", reactor_port, "/webhooks/chargebee", args.rate, count,
                       lambda i: (f"ev_rate_{i}", bodies[i]), headers)
        )  # fmt: skip
        job_ids = {j.decode() for j in conn.lrange("rq:queue:reactor", 0, -1)}
        missing = [i for i in fixed.queued_ids if f"evaluate-{i}" not in job_ids]
        fixed_errors = fixed.errors + sum(n for status, n in fixed.statuses.items() if status != 200)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if replica:
            replica.stop()
        server.stop()

    ratio = ours["rps"] / bare["rps"]
    p99 = fixed.percentile(99)
    workers, connections = os.environ.get("WEB_CONCURRENCY", "2"), os.environ.get("WEB_CONNECTIONS", "1000")
    print(
        f"ingest benchmark: gunicorn gevent {workers} workers x {connections} connections, loopback, "
        f"wrk -t2 -c{args.connections}; {os.cpu_count()} cpus; event body {len(ready_body)} bytes"
        + ("; Redis with one replica, the reactor's accept waits for it (WAIT 1)" if replica else "")
    )
    print()
    print(f"{'run':<40} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>6} "
          f"{'web us/req':>10} {'redis us/req':>12} {'load':>5}")  # fmt: skip
    runs = [("bare Flask", bare), ("bare Flask + one Redis SET", stored), ("reactor webhook", ours)]
    if replica:
        runs.append(("reactor, REACTOR_REPLICA_ACK=off", no_ack))
    for label, run in runs:
        print(f"{label + ', wrk ' + str(args.seconds) + ' s':<40} {run['rps']:>7,.0f} {run['p50_ms']:>7.2f} "
              f"{run['p99_ms']:>7.2f} {run['max_ms']:>7.1f} {run['errors']:>6} {run['web_us']:>10,.0f} "
              f"{run['redis_us']:>12,.0f} {run['load']:>5.2f}")  # fmt: skip
    label = f"reactor webhook, fixed {args.rate:,.0f}/s x {args.seconds} s"
    print(f"{label:<40} {len(fixed.latencies_ms) / fixed.seconds:>7,.0f} {fixed.percentile(50):>7.2f} "
          f"{p99:>7.2f} {max(fixed.latencies_ms, default=0):>7.1f} {fixed_errors:>6}")  # fmt: skip
    print()
    print(f"bare Flask + one Redis SET reaches {stored['rps'] / bare['rps']:.0%} of bare Flask; "
          f"the reactor reaches {ours['rps'] / stored['rps']:.0%} of that")  # fmt: skip
    if replica:
        p50, p99_more = ours["p50_ms"] - no_ack["p50_ms"], ours["p99_ms"] - no_ack["p99_ms"]
        print(f"waiting for the replica: {ours['rps'] / no_ack['rps']:.0%} of the req/s without, "
              f"p50 {p50:+.2f} ms, p99 {p99_more:+.2f} ms")  # fmt: skip
    print()
    checks = [
        (f"reactor req/s >= {RATIO_TARGET:.0%} of bare", f"{ratio:.0%}", ratio >= RATIO_TARGET),
        (f"p99 at {args.rate:,.0f} req/s <= {P99_TARGET_MS:g} ms", f"{p99:.2f} ms", p99 <= P99_TARGET_MS),
        ("zero errors (non-200, socket errors)", f"{ours['errors'] + fixed_errors}",
         ours["errors"] + fixed_errors == 0),
        ("every 'queued' answer is in the RQ queue (wrk)", f"{ours['queued']} answered, {in_queue} in queue",
         not wrk_lost),
        ("every 'queued' answer is in the RQ queue (fixed rate, by id)",
         f"{len(fixed.queued_ids)} answered, {len(missing)} missing", not missing and len(fixed.queued_ids) == count),
    ]  # fmt: skip
    for name, value, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name:<58} {value}")
    passed = all(ok for _, _, ok in checks)
    print(f"RESULT: {'PASS' if passed else 'FAIL'}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
