"""gunicorn settings for the web process (`gunicorn -c python:reactor.gunicorn_conf ...`).

Binds $PORT, sizes workers from $WEB_CONCURRENCY, sets up the reactor's logging and hands gunicorn's
own messages and access lines to it (`ReactorGunicornLogger`: JSON lines off a terminal, as
`reactor worker` writes them; workers inherit it from the master), puts gunicorn's control socket in
this directory's var/, and gives prometheus-client a per-deploy directory so that /metrics adds up
the samples of every gunicorn worker.

This file reads the process's environment itself: gunicorn runs it first, in its master, before any
app or `Settings` exists, so it is the web process's edge. The variables are read and checked by
reactor.config (`web_server_settings`, `log_settings`); a bad one stops gunicorn with one line that
names it."""

import gc
import logging
import os
import subprocess
import sys
import tempfile

from gunicorn.glogging import Logger

from reactor.config import EX_CONFIG, ConfigError, log_settings, secrets_in, web_server_settings
from reactor.logs import setup_logging
from reactor.redaction import remember

try:
    _logging = log_settings(os.environ)
except ConfigError as exc:  # no log format to say it in
    sys.exit(f"reactor.gunicorn_conf: {exc}")
setup_logging(_logging.level, _logging.json_lines)
remember(secrets_in(os.environ))  # never in a line of the master's (each app adds its settings' own)


def _refuse(problem: str) -> None:
    logging.getLogger("reactor.gunicorn_conf").critical("refused to start: %s", problem)
    sys.exit(EX_CONFIG)


try:
    _server = web_server_settings(os.environ)
except ConfigError as exc:
    _refuse(str(exc))

# What the app would refuse in each worker (gunicorn would print a traceback, and a process manager
# start it again), and a REDIS_URL that Redis refuses (a wrong password): said once, in one line,
# before gunicorn starts, and gunicorn exits EX_CONFIG, which is not worth a restart
# (reactor/config.py). A Redis that does not answer yet is waited for: /healthz answers, /readyz and
# webhooks 503. In a process of its own: reactor/redis_probe.py says why.
_check = subprocess.run([sys.executable, "-m", "reactor.redis_probe", "check"], check=False)
if _check.returncode:
    sys.exit(_check.returncode)

bind = _server.bind
workers = _server.workers
# gevent: a connection costs a greenlet, not a thread, so clients that send slowly (slowloris: 200
# connections sending a header byte a second held every gthread slot and starved every delivery)
# wait in the event loop while other requests are answered (tests/integration/test_slow_clients.py).
# gunicorn patches the standard library in each worker before the app is imported; redis-py (with
# hiredis, which only parses), RQ, limits and prometheus-client then do their I/O cooperatively.
worker_class = "gevent"
worker_connections = _server.connections  # per worker; more wait in the backlog
timeout = 30
graceful_timeout = 20
# Also the deadline for a request's headers: gunicorn's async workers read each request line and
# headers (the first request of a connection too) under a timeout of `keepalive` seconds and then
# close the connection, so a client trickling its headers is cut off after 5 s.
keepalive = 5
# Each worker listens on its own SO_REUSEPORT socket, so the kernel spreads new connections over
# the workers. On one shared socket, whichever worker wakes first may take every connection of a
# burst (keep-alive clients such as a load balancer then stay on it) and the other workers idle:
# measured in docs/benchmarks.md, it halved throughput in some runs. WEB_REUSE_PORT=0 turns it
# off. With it on, a second server started by the same user on the same port shares the traffic
# instead of failing to bind (`reactor run` checks that the port is free first), and connections
# still queued on a worker that restarts are reset rather than taken by another worker (Chargebee
# redelivers them).
reuse_port = _server.reuse_port
# With no control socket of its own per server, gunicorn (25.1 and later) puts one at a fixed path
# per user: a second server takes it over and the first one to stop deletes it. An older gunicorn
# ignores these two settings.
control_socket = os.path.abspath(_server.control_socket) if _server.control_socket else ""
control_socket_disable = _server.control_socket is None

loglevel = _logging.level.lower()
accesslog = "-" if _server.access_log else None
# The line's `ts` field already says when: no date in the message, nor the Basic-auth user.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'


class ReactorGunicornLogger(Logger):
    """gunicorn's logger, writing through the reactor's handler (reactor.logs): its messages
    (`gunicorn.error`, whatever their level) and access lines (`gunicorn.access`) propagate to the
    root logger instead of going to gunicorn's console handlers, so they carry the same fields as
    every other line of the reactor. A log file named on gunicorn's command line stays its own."""

    def setup(self, cfg):
        super().setup(cfg)  # levels, and the console handlers taken off again here (on a reload too)
        for log, output in ((self.error_log, cfg.errorlog), (self.access_log, cfg.accesslog)):
            if output == "-":
                for handler in [h for h in log.handlers if getattr(h, "_gunicorn", False)]:
                    log.removeHandler(handler)
                log.propagate = True

    def info(self, msg, *args, **kwargs):
        # With reuse_port the master binds nothing (each worker binds its own socket), so the
        # arbiter's list of its listeners is empty: name the address the workers bind instead.
        if msg == "Listening at: %s (%s)" and args and not args[0]:
            msg = "Listening at: %s (%s; each worker on a SO_REUSEPORT socket of its own)"
            args = (",".join(_url(address) for address in self.cfg.address), *args[1:])
        super().info(msg, *args, **kwargs)


def _url(address) -> str:
    """An address of gunicorn's `bind` as gunicorn's own listeners print it."""
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    return f"unix:{address}"


logger_class = ReactorGunicornLogger

if _server.metrics_dir is None:
    # prometheus-client reads its directory from this variable in each worker (and the app's
    # Settings.metrics_dir from it too), so it goes into the environment the workers inherit.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="reactor-metrics-")


def post_worker_init(worker):
    # The app is loaded (gunicorn runs this hook after importing it in the worker): everything it
    # allocated to start (modules, Flask, RQ, the rules, some 60,000 objects) lives as long as the
    # worker. Frozen, the garbage collector leaves it out of every collection; otherwise each
    # collection of the oldest generation walked all of it, 15-75 ms during which every greenlet of
    # the worker waits (the webhook's p99 at 1,000 requests/s: docs/benchmarks.md, "Ingest").
    gc.collect()
    gc.freeze()


def child_exit(server, worker):
    # prometheus-client chooses multiprocess mode from PROMETHEUS_MULTIPROC_DIR when first imported
    from prometheus_client import multiprocess  # late: only once the variable is set above

    multiprocess.mark_process_dead(worker.pid)


_probe: subprocess.Popen | None = None  # the wait for Redis under REACTOR_REDIS_WAIT, while it runs
_verdict = ""  # the file where it leaves its exit status for on_exit before it stops gunicorn


def when_ready(server):
    """With REACTOR_REDIS_WAIT, the master gives Redis that long to answer, as `reactor worker` does:
    meanwhile its workers answer /healthz, and /readyz and webhooks with 503; past it gunicorn stops
    and exits 1, for a platform that prefers to restart it. Redis refusing us once it answers (a
    wrong password) stops it with EX_CONFIG. Unset: the web waits for Redis as long as it runs.

    The probe (reactor/redis_probe.py) leaves its status in a file and sends the master SIGTERM,
    gunicorn's own stop; the master does not wait for it (gunicorn reaps every child of its own)."""
    global _probe, _verdict
    if not os.environ.get("REACTOR_REDIS_WAIT", "").strip():
        return
    handle, _verdict = tempfile.mkstemp(prefix="reactor-redis-wait-")
    os.close(handle)
    command = [sys.executable, "-m", "reactor.redis_probe", "wait", "--verdict", _verdict, str(os.getpid())]
    _probe = subprocess.Popen(command)


def on_exit(server):
    if _probe is not None and _probe.poll() is None:
        _probe.terminate()
    if not _verdict:
        return
    try:
        with open(_verdict) as verdict:
            status = verdict.read().strip()
    finally:
        os.unlink(_verdict)
    if status.isdigit() and int(status):
        sys.exit(int(status))
