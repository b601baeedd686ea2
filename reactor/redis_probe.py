"""`python -m reactor.redis_probe check|wait`: the web's look at its configuration and Redis, for
gunicorn's master (reactor/gunicorn_conf.py), in a process of its own. The master must not import
redis-py: its `ssl` import, inherited by each forked worker before gevent patches it, makes gevent
warn that ssl was patched too late (which can break TLS connections).

- `check`: refuse what the app would refuse in each worker (a missing webhook login, a malformed
  setting), a REDIS_URL that Redis or its sentinels refuse (a wrong password) and a Redis that may
  evict keys (its maxmemory-policy), in one line, exit EX_CONFIG; a Redis that does not answer yet
  passes (the web waits for it), exit 0.
- `wait`: wait for Redis up to REACTOR_REDIS_WAIT (reactor/redis_wait.py): exit 0 once it answers,
  1 when the deadline passes, EX_CONFIG when it answers but refuses us or may evict keys; each with
  its line. With `--verdict FILE MASTER_PID` (gunicorn's master, which reaps every child itself, so
  that it could not read the exit status), a status other than 0 is written to FILE and the master
  is sent SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import redis

from .config import EX_CONFIG, ConfigError, load_settings, log_settings, require_webhook_credentials, secrets_in
from .logs import setup_logging
from .redaction import remember
from .redis_connect import connect
from .redis_wait import RedisUnreachable, eviction_refusal, explain, refusal, wait_for_redis

log = logging.getLogger("reactor.redis_probe")  # not __main__, run with -m


def main(argv: list[str]) -> int:
    wanted = log_settings(os.environ)  # checked by the master already
    setup_logging(wanted.level, wanted.json_lines)
    remember(secrets_in(os.environ))  # a refusal may quote REDIS_URL's password
    try:
        settings = load_settings(os.environ)
        require_webhook_credentials(settings)
    except ConfigError as exc:
        log.critical("refused to start: %s", exc)
        return EX_CONFIG
    if not settings.redis_url:
        return 0  # the app says so, as it always has
    if argv == ["check"]:
        refused = refusal(settings.redis_url)
        if refused:
            log.critical("refused to start: %s", refused)
            return EX_CONFIG
        return 0
    if argv[:1] != ["wait"] or len(argv) not in (1, 4) or (len(argv) == 4 and argv[1] != "--verdict"):
        raise SystemExit("usage: python -m reactor.redis_probe check | wait [--verdict FILE MASTER_PID]")
    status = wait(settings.redis_url, settings.redis_wait, settings.redis_socket_timeout)
    if status and len(argv) == 4:
        _, _, verdict, master = argv
        if os.getppid() == int(master):  # not a master that is gone (and pid 1 in its place)
            with open(verdict, "w") as out:
                out.write(f"{status}\n")
            os.kill(int(master), signal.SIGTERM)  # gunicorn's own stop; its on_exit reads the file
    return status


def wait(url: str, deadline: float | None, timeout: float) -> int:
    """Wait for Redis at `url` up to `deadline` seconds; the exit status, said in a line unless 0."""
    connection = connect(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        wait_for_redis(connection, deadline=deadline)
        refused = eviction_refusal(connection)
    except RedisUnreachable as exc:
        log.critical("refused to start: %s (REACTOR_REDIS_WAIT=%g)", exc, deadline)
        return 1
    except redis.RedisError as exc:  # it answers but refuses us
        log.critical("refused to start: Redis refused us: %s", explain(exc))
        return EX_CONFIG
    finally:
        connection.close()
    if refused:
        log.critical("refused to start: %s", refused)
        return EX_CONFIG
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
