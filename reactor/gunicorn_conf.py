"""gunicorn settings for the web process (`gunicorn -c python:reactor.gunicorn_conf ...`).

Binds $PORT, sizes workers from $WEB_CONCURRENCY, sets up the reactor's logging (JSON lines, as
`reactor worker` writes them; workers inherit it from the master), and gives prometheus-client a
per-deploy directory so that /metrics adds up the samples of every gunicorn worker.

This file reads the process's environment itself: gunicorn runs it first, in its master, before any
app or `Settings` exists, so it is the web process's edge. The variables are read and checked by
reactor.config (`web_server_settings`, `log_settings`); a bad one stops gunicorn with one line that
names it."""

import os
import sys
import tempfile

from reactor.config import ConfigError, log_settings, web_server_settings
from reactor.logs import setup_logging

try:
    _server = web_server_settings(os.environ)
    _logging = log_settings(os.environ)
except ConfigError as exc:
    sys.exit(f"reactor.gunicorn_conf: {exc}")

setup_logging(_logging.level, _logging.json_lines)

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
accesslog = "-" if _server.access_log else None

if _server.metrics_dir is None:
    # prometheus-client reads its directory from this variable in each worker (and the app's
    # Settings.metrics_dir from it too), so it goes into the environment the workers inherit.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="reactor-metrics-")


def child_exit(server, worker):
    # prometheus-client chooses multiprocess mode from PROMETHEUS_MULTIPROC_DIR when first imported
    from prometheus_client import multiprocess  # late: only once the variable is set above

    multiprocess.mark_process_dead(worker.pid)


def when_ready(server):
    if reuse_port:  # the master holds no socket then, and gunicorn's own line shows an empty address
        server.log.info("Listening at: http://%s (a SO_REUSEPORT socket in each worker)", bind)
