"""One log format for every process: the Procfile's web (gunicorn, its access log on), worker and
cron, their stdout and stderr on pipes as under a process manager, write every line as one JSON
object with the same fields while a webhook is driven to a write-off; no line shows an empty address;
and two web servers on one host keep gunicorn's control sockets apart, each in its own var/.
`reactor run`'s lines are read the same way in test_quickstart.py."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from gunicorn.config import KNOWN_SETTINGS

from reactor.config import Settings
from reactor.local.redis_server import free_port
from reactor.local.supervisor import WEB_COMMAND
from tests.helpers import (
    REPO,
    WEBHOOK_PASSWORD,
    WEBHOOK_USER,
    descendants,
    group_members,
    log_records,
    wait_for,
    wait_until,
    worker_env,
)
from tests.integration.helpers import exhausted_invoice, make_event, outcomes, post_event

pytestmark = pytest.mark.integration

PROCESSES = {
    "web": [sys.executable, *WEB_COMMAND],
    "worker": [sys.executable, "-m", "reactor", "worker"],
    "cron": [sys.executable, "-m", "reactor", "cron"],
}
# An address with nothing in it: "Listening at:  (123)", "listening at ", "http://:8000".
EMPTY_ADDRESS = re.compile(r"(?i)listening (at|on):?\s*(\(|$)|https?://(:|/|\s|$)")
HAS_CONTROL_SOCKET = any(setting.name == "control_socket" for setting in KNOWN_SETTINGS)


class PipedProcess:
    """A process whose stdout and stderr are pipes (not a terminal), read to the end by threads."""

    def __init__(self, command: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.readers = [
            threading.Thread(target=self._read, args=(stream, self.lines[name]), daemon=True)
            for name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr))
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for raw in stream:
            lines.append(raw.decode(errors="replace"))

    def output(self, stream: str = "stderr") -> str:
        return "".join(self.lines[stream])

    def stop(self) -> None:
        """SIGTERM to its process group (a deploy's stop), then wait until every process of the group,
        RQ's scheduler too, has exited and the pipes are read to their end."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if not wait_until(lambda: not group_members(self.proc.pid), timeout=30):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for reader in self.readers:
            reader.join(10)


def process_env(settings: Settings, tmp_path: Path, port: int) -> dict[str, str]:
    """What the processes get, less REACTOR_LOG_FORMAT: off a terminal they choose JSON themselves.
    HOME is the test's own, so that a control socket gunicorn put in ~/.gunicorn/ would show."""
    env = worker_env(settings)
    env.pop("REACTOR_LOG_FORMAT")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="1",
        REACTOR_ACCESS_LOG="1",
        REACTOR_WEBHOOK_USER=WEBHOOK_USER,
        REACTOR_WEBHOOK_PASSWORD=WEBHOOK_PASSWORD,
        HOME=str(tmp_path / "home"),
    )
    return env


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=3).status_code == 200
    except requests.RequestException:  # not listening yet, or still importing the app
        return False


def test_every_process_writes_json_lines_with_the_same_fields(settings, sandbox, redis_conn, tmp_path: Path):
    port = free_port()
    env = process_env(settings, tmp_path, port)
    processes = {name: PipedProcess(command, env) for name, command in PROCESSES.items()}
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/readyz"), timeout=30, what="gunicorn to answer")
        invoice = exhausted_invoice(sandbox)
        event = make_event(invoice)
        assert post_event(f"http://127.0.0.1:{port}/webhooks/chargebee", event).status_code == 200
        wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=30, what="the write-off")
        # cron's lines come from its own start, which nothing above waited for.
        wait_for(lambda: ": starting..." in processes["cron"].output(), timeout=30, what="RQ's cron scheduler to start")
    finally:
        for process in processes.values():
            process.stop()  # the lines of a stop are read too

    records = {}
    for name, process in processes.items():
        assert process.output("stdout") == "", f"{name} wrote to stdout: {process.output('stdout')[:500]}"
        records[name] = log_records(process.output(), what=f"{name}'s stderr")
    everything = [record for lines in records.values() for record in lines]
    assert {record["level"] for record in everything} <= {"debug", "info", "warning", "error", "critical"}
    assert [r["msg"] for r in everything if EMPTY_ADDRESS.search(r["msg"])] == []

    def said(name: str, logger: str, text: str) -> list[dict]:
        return [r for r in records[name] if r["logger"] == logger and text in r["msg"]]

    # gunicorn's own lines, its access log and the app's, in one format.
    assert said("web", "gunicorn.error", f"Listening at: http://127.0.0.1:{port} ("), records["web"][:5]
    assert said("web", "gunicorn.access", '"POST /webhooks/chargebee HTTP/1.1" 200')
    receipt = said("web", "reactor.ingest.webhook", "queued")
    assert receipt and receipt[0]["event_id"] == event["id"] and receipt[0]["invoice_id"] == invoice["id"]
    # RQ's worker and the reactor's job, with the job's ids on each line of it.
    assert said("worker", "rq.worker", "Job OK")
    decision = said("worker", "reactor.jobs", "decision written_off")
    assert decision and decision[0]["invoice_id"] == invoice["id"] and decision[0]["job_id"]
    # RQ's cron scheduler and what `reactor cron` says it does.
    assert said("cron", "rq.cron", "starting") and said("cron", "reactor.cli.processes", "sweeping unpaid invoices")
    if HAS_CONTROL_SOCKET:
        control = str((settings.var_dir / f"gunicorn-{port}.ctl").resolve())
        assert said("web", "gunicorn.error", f"Control socket listening at {control}")
        assert not (tmp_path / "home" / ".gunicorn").exists()


def control_socket(web: PipedProcess) -> Path:
    """The path of the control socket the web process says it listens at."""

    def logged() -> str | None:
        for line in web.output().splitlines():
            if "Control socket listening at " in line:
                return line.split("Control socket listening at ", 1)[1].split('"', 1)[0]
        return None

    return Path(wait_for(logged, timeout=30, what=f"a control socket\n{web.output()[-2000:]}"))  # type: ignore[arg-type]


@pytest.mark.skipif(not HAS_CONTROL_SOCKET, reason="this gunicorn has no control socket (before 25.1)")
def test_two_web_servers_have_control_sockets_of_their_own(settings, tmp_path: Path):
    from gunicorn.ctl.client import ControlClient  # gunicorn 25.1 and later

    webs = {}
    try:
        for name in ("a", "b"):
            env = process_env(settings, tmp_path, free_port())
            env["REACTOR_VAR_DIR"] = str(tmp_path / name / "var")
            webs[name] = PipedProcess([sys.executable, *WEB_COMMAND], env)
        sockets = {name: control_socket(web) for name, web in webs.items()}
        assert sockets["a"] != sockets["b"]
        for name, path in sockets.items():
            assert path.parent == (tmp_path / name / "var").resolve() and stat.S_ISSOCK(path.stat().st_mode)
            with ControlClient(str(path), timeout=10) as client:  # each answers for its own workers
                workers = {worker["pid"] for worker in client.send_command("show workers")["workers"]}
            assert workers and workers <= set(descendants(webs[name].proc.pid))

        webs["a"].stop()
        assert not sockets["a"].exists()
        assert stat.S_ISSOCK(sockets["b"].stat().st_mode), "stopping one server took the other's socket away"
        assert not (tmp_path / "home" / ".gunicorn").exists()
    finally:
        for web in webs.values():
            web.stop()
    for name, web in webs.items():
        log_records(web.output(), what=f"web {name}'s stderr")
