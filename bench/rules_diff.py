"""`reactor rules diff` over 10,000 open sandbox invoices: online (listing + facts), then offline
from the snapshot it saved.

    .venv/bin/python bench/rules_diff.py [--invoices 10000] [--customers 500]

A real redis-server, the sandbox as its own process (no latency, no faults) holding `--invoices`
unpaid USD invoices (a third dunning exhausted, 1-100 USD, 30-200 days overdue) for `--customers`
customers (one in ten `cf_segment: enterprise`), the shared Chargebee rate limit raised out of the
way. The base is the shipped rules.yaml (its protect-enterprise rule reads the customer, so the diff
fetches customers); the new file adds a sweep-visible rule for exhausted dunning up to 50 USD and a
`max_per_day` budget. Reported: wall time of the `reactor rules diff` process (start-up included),
the Chargebee calls it reports, the sandbox's own count, and the offline run from the snapshot.
Target: the online run under a minute, and the offline run giving the same answer.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from reactor.local.redis_server import EmbeddedRedis, free_port  # noqa: E402
from reactor.sandbox.state import DEMO_API_KEY  # noqa: E402

NEW_RULES = (ROOT / "rules.yaml").read_text().replace(
    "  max_write_off: {USD: 500, EUR: 450, GBP: 400, JPY: 60000}\n",
    "  max_write_off: {USD: 500, EUR: 450, GBP: 400, JPY: 60000}\n  max_per_day: {USD: 5000}\n",
) + (
    "  - name: sweep-exhausted-under-50\n"
    "    when:\n"
    "      - invoice.dunning_status: exhausted\n"
    "      - invoice.amount_due: {lte: {USD: 50}}\n"
    "    action: write_off\n"
)


TARGET_SECONDS = 60


def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def seed(control: str, invoices: int, customers: int) -> None:
    now = int(time.time())
    people = [{"id": f"cus_bd_{n}", "cf_segment": "enterprise" if n % 10 == 0 else "smb"} for n in range(customers)]
    requests.post(f"{control}/customers", json=people, timeout=60).raise_for_status()
    for start in range(0, invoices, 1000):
        batch = []
        for i in range(start, min(start + 1000, invoices)):
            amount = 100 + (i * 37) % 9900
            exhausted = i % 3 == 0
            batch.append(
                {
                    "id": f"inv_bd_{i:06d}",
                    "customer_id": f"cus_bd_{i % customers}",
                    "status": "not_paid" if exhausted else "payment_due",
                    "dunning_status": "exhausted" if exhausted else "stopped",
                    "currency_code": "USD",
                    "total": amount,
                    "date": now - (30 + i % 170) * 86400,
                }
            )
        requests.post(f"{control}/invoices", json=batch, timeout=120).raise_for_status()


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, dict, int]:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed, json.loads(done.stdout), done.returncode


def measure(work: Path, control: str, env: dict[str, str], args: argparse.Namespace) -> bool:
    """Both runs, printed; whether they meet the target."""
    new = work / "new.yaml"
    new.write_text(NEW_RULES)
    snapshot = work / "open.json.gz"
    reactor = [str(Path(sys.executable).parent / "reactor"), "rules", "diff", str(new), "--format", "json"]
    online, data, code = timed([*reactor, "--snapshot", str(snapshot)], env)
    calls = len(requests.get(f"{control}/calls", timeout=60).json()["calls"])
    offline, again, _ = timed([*reactor, "--invoices", str(snapshot), "--at", data["at"]], env)
    same = {k: v for k, v in data.items() if k not in ("source", "chargebee_calls")} == {
        k: v for k, v in again.items() if k not in ("source", "chargebee_calls")
    }
    print(f"rules diff benchmark: {data['invoices']:,} open invoices, {args.customers} customers")
    print(f"  online:  {online:6.1f} s, {data['chargebee_calls']:,} Chargebee calls reported, {calls:,} seen")
    print(f"           by the sandbox; {data['changed']:,} changed (exit {code}): {data['counts']}")
    print(f"  offline: {offline:6.1f} s from the snapshot ({snapshot.stat().st_size:,} bytes gzipped);")
    print(f"           same answer: {same}")
    passed = online < TARGET_SECONDS and same and data["invoices"] == args.invoices
    print(f"RESULT: {'PASS' if passed else 'FAIL'} (online under {TARGET_SECONDS} s, offline the same answer)")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=10000)
    parser.add_argument("--customers", type=int, default=500)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-rules-diff-"))
    passed = False
    server = EmbeddedRedis(work / "redis").start()
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "REACTOR_RULES": str(ROOT / "rules.yaml"),
        "CHARGEBEE_API_BASE": f"http://127.0.0.1:{port}/api/v2",
        "CHARGEBEE_API_KEY": DEMO_API_KEY,
        "REACTOR_CHARGEBEE_RATE_LIMIT": "100000000",  # "no rate limit" for this benchmark
        "REACTOR_LOG_LEVEL": "WARNING",
    }
    with (work / "sandbox.log").open("ab") as out:
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "reactor.sandbox", "--port", str(port), "--no-seed"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        control = f"http://127.0.0.1:{port}/_sandbox"
        wait_for(lambda: _up(f"{control}/faults"), 30, "the sandbox")
        seed(control, args.invoices, args.customers)
        passed = measure(work, control, env, args)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
        server.stop()
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
