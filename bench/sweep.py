"""`reactor sweep` and `reactor rules diff` over 100,000 open sandbox invoices, at an unlimited rate.

    .venv/bin/python bench/sweep.py [--invoices 100000] [--customers 500]

A real redis-server, the sandbox as its own process (no latency, no faults) seeded as
bench/rules_diff.py seeds it (unpaid USD invoices, a third dunning exhausted, 1-100 USD, 30-200
days overdue, one customer in ten enterprise), the shared Chargebee rate limit out of the way.
The rules are bench/rules_diff.py's new file: the shipped rules.yaml (protect-enterprise reads the
customer) plus a rule without `on:` that a sweep sees, exhausted dunning up to 50 USD. Three
commands, one after the other on the same sandbox:

  reactor sweep --dry-run     list, decide, fetch each customer a candidate's decision needs, once
  reactor sweep               list, decide, accept each candidate as an event (no worker runs)
  reactor rules diff NEW      list, fetch each customer once, decide under both files

Reported per command: wall time (start-up included), the CPU it spent and the sandbox spent
(from /proc), and the Chargebee calls the sandbox received, by kind. The floor is one list call
per 100 invoices: 1,000 for 100,000.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ingest import cpu_seconds  # noqa: E402
from rules_diff import NEW_RULES, seed  # noqa: E402
from stack import ROOT, Stack, running_stack, sandbox_calls  # noqa: E402

PAGE = 100


def call_kind(call: dict[str, object]) -> str:
    path = str(call["path"]).removeprefix("/api/v2/")
    parts = path.split("/")
    if call["method"] == "GET" and parts == ["invoices"]:
        return "list invoices"
    if call["method"] == "GET" and len(parts) == 2:
        return f"retrieve {parts[0].removesuffix('s')}"
    return f"{call['method']} {parts[0]}/*/{'/'.join(parts[2:])}"


def run_command(stack: Stack, cmd: list[str], env: dict[str, str]) -> dict[str, object]:
    """Run one reactor command; its wall time, its CPU and the sandbox's, and the calls it made."""
    sandbox_pid = stack.sandbox_pid
    calls_before = len(sandbox_calls(stack))
    sandbox_before = cpu_seconds([sandbox_pid])
    redis_before = cpu_seconds([stack.redis_pid])
    own_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    own_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-2000:]}")
    calls = sandbox_calls(stack)[calls_before:]
    return {
        "wall": wall,
        "cpu": own_after.ru_utime + own_after.ru_stime - own_before.ru_utime - own_before.ru_stime,
        "sandbox_cpu": cpu_seconds([sandbox_pid]) - sandbox_before,
        "redis_cpu": cpu_seconds([stack.redis_pid]) - redis_before,
        "calls": Counter(call_kind(c) for c in calls),
        "out": done.stdout,
    }


def measure(stack: Stack, work: Path) -> dict[str, dict[str, object]]:
    new = work / "new.yaml"
    new.write_text(NEW_RULES)
    reactor = str(Path(sys.executable).parent / "reactor")
    env = {**stack.env, "REACTOR_RULES": str(new), "REACTOR_LOG_LEVEL": "WARNING"}
    runs = {
        "sweep --dry-run": run_command(stack, [reactor, "sweep", "--dry-run"], env),
        "sweep": run_command(stack, [reactor, "sweep", "--restart"], env),
    }
    diff_env = {**env, "REACTOR_RULES": str(ROOT / "rules.yaml")}
    runs["rules diff"] = run_command(stack, [reactor, "rules", "diff", str(new), "--format", "json"], diff_env)
    runs["sweep"]["queued_jobs"] = stack.conn.llen("rq:queue:reactor")
    return runs


def summary(name: str, run: dict[str, object]) -> str:
    out = str(run["out"])
    if name == "rules diff":
        data = json.loads(out)
        return f"{data['invoices']:,} invoices, {data['changed']:,} changed, {data['chargebee_calls']:,} calls reported"
    if name == "sweep":
        return out.strip().splitlines()[-1] + f"; {run['queued_jobs']:,} jobs in the queue"
    match = re.search(r"dry run: .*", out)
    return match.group(0) if match else out[-200:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=500)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="reactor-bench-sweep-"))
    with running_stack(work, web=False) as stack:
        seed(stack.sandbox_control, args.invoices, args.customers)
        load = os.getloadavg()
        runs = measure(stack, work)
    floor = -(-args.invoices // PAGE)
    print(f"sweep benchmark: {args.invoices:,} open invoices, {args.customers} customers, no rate limit; "
          f"{os.cpu_count()} cpus, load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after")  # fmt: skip
    print()
    print(f"{'command':<17} {'wall s':>7} {'own CPU s':>9} {'sandbox CPU s':>13} {'redis CPU s':>11}  calls")
    passed = True
    for name, run in runs.items():
        calls: Counter[str] = run["calls"]  # type: ignore[assignment]
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in calls.most_common())
        print(f"{name:<17} {run['wall']:>7.1f} {run['cpu']:>9.1f} {run['sandbox_cpu']:>13.1f} "
              f"{run['redis_cpu']:>11.1f}  {sum(calls.values()):,}: {kinds}")  # fmt: skip
        print(f"{'':<17} {summary(name, run)}")
        passed = passed and calls["list invoices"] == floor
    print()
    print(f"floor: {floor:,} list calls (one per {PAGE} invoices); every command listed each invoice once: {passed}")
    print(f"RESULT: {'PASS' if passed else 'FAIL'} (the figures are reported; the check is the listing at its floor)")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
