"""The long-running processes: `reactor run`, `web`, `worker`, `cron` and `sandbox`.

The sandbox (Flask) and RQ's cron scheduler (croniter) are imported inside their commands, for
start-up time: `reactor --help` and the other commands need not load them. `run` and `web` start
other processes: the environment they hand on is read here, at this process's edge (`os.environ`).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import click
import redis
from rq.exceptions import StopRequested

from ..config import EX_CONFIG, Settings, log_settings
from ..console.archiving import start_archiver
from ..console.notify import receiver_name, start_notifier
from ..jobs.sweep import SWEEP_JOB_TIMEOUT, scheduled_sweep
from ..jobs.worker import raise_stop_on_signals, run_worker
from ..local.supervisor import refuse_fresh_with_redis_url, run_all, serve_web
from ..logs import wants_json
from ..redis_wait import refusal
from ..rules import RulesError, load_rules
from ..sites import Site, SiteConfigError, site_names
from .helpers import RedisUnavailable, chargebee_settings, command_settings, connect

PORT = click.IntRange(1, 65535)

log = logging.getLogger(__name__)


def refusals_logged(command: Callable[..., Any]) -> Callable[..., Any]:
    """A process that refuses to start says why as a log line where its other lines are JSON (under
    a process manager), and as the command's usual `Error: ...` on a terminal; in one line and at
    once. It exits EX_CONFIG (78) on a bad configuration, which `reactor run` and a process manager
    told so do not restart, and 1 when Redis did not answer (RedisUnavailable), which is worth a
    restart."""

    @functools.wraps(command)
    def run_command(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except click.ClickException as exc:
            if not isinstance(exc, RedisUnavailable):
                exc.exit_code = EX_CONFIG
            if not wants_json(log_settings(os.environ).json_lines):  # checked by the `reactor` group already
                raise
            log.critical("refused to start: %s", exc.format_message())
            sys.exit(exc.exit_code)

    return run_command


def archive_name(url: str) -> str:
    """The archive as a log line may name it: a local path, or scheme and host (no credentials)."""
    return receiver_name(url) if "://" in url else url


def check_rules(settings: Settings) -> None:
    """Refuse a rules file with any problem, each at file:line:col, in one message and at once."""
    try:
        load_rules(settings.rules_path, sites=settings.site_names)
    except RulesError as exc:
        raise click.ClickException(f"rules file refused:\n{exc}") from None


def check_redis(settings: Settings) -> None:
    """Refuse a REDIS_URL that Redis (or its sentinels) refuses, a wrong password, in one line and
    before anything starts; one that does not answer yet is left to the processes, which wait."""
    if settings.redis_url:
        refused = refusal(settings.redis_url)
        if refused:
            raise click.ClickException(refused)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the web process listens on.")
@click.option("--port", type=PORT, default=None, help="Web port (default $PORT or 8000).")
@click.option("--sandbox-port", type=PORT, default=8001, show_default=True, help="Port of the local sandbox.")
@click.option(
    "--fresh",
    is_flag=True,
    help="Start the embedded Redis empty: delete var/redis/ first (refused when REDIS_URL is set).",
)
@click.option(
    "--sandbox-sites",
    envvar="REACTOR_SANDBOX_SITES",
    default="",
    metavar="NAME,NAME",
    help="Start one sandbox per Chargebee site name (e.g. demo-eu,demo-us), each its own port, API key "
    "and demo invoices; the first is the home site. Sandbox mode only. [env: REACTOR_SANDBOX_SITES]",
)
@refusals_logged
def run(host: str, port: int | None, sandbox_port: int, fresh: bool, sandbox_sites: str) -> None:
    """Web + worker + scheduler in one command; embedded Redis and the sandbox when not configured.
    The sandbox lives in memory (its demo invoices start again at every run); the embedded Redis
    keeps its data in var/redis/ from one run to the next, unless --fresh. A part that dies is
    started again; Ctrl-C stops everything."""
    settings = command_settings()
    if fresh:
        refuse_fresh_with_redis_url(settings)  # first: nothing else is looked at for a refused --fresh
    names = sandbox_site_names(settings, sandbox_sites)
    checked = settings
    if len(names) > 1:  # the rules may name the sandbox sites
        others = tuple(Site(name, None, home=False) for name in names[1:])
        checked = replace(settings, chargebee_site=names[0], other_sites=others)
    check_rules(checked)  # now, rather than as a worker that dies and is restarted again and again
    check_redis(settings)
    code = run_all(
        settings, os.environ, host=host, port=port, sandbox_port=sandbox_port, fresh=fresh, sandbox_sites=names
    )
    sys.exit(code)


def sandbox_site_names(settings: Settings, raw: str) -> tuple[str, ...]:
    """--sandbox-sites: Chargebee site names, refused outside sandbox mode (a configured Chargebee is
    never stood in for)."""
    try:
        names = site_names(raw)
    except SiteConfigError as exc:
        raise click.BadParameter(
            str(exc).replace("REACTOR_SITES", "--sandbox-sites"), param_hint="--sandbox-sites"
        ) from None
    if names and not settings.sandbox_mode:
        raise click.BadParameter(
            "sandbox sites stand in for Chargebee only when none is configured (no CHARGEBEE_SITE, "
            "CHARGEBEE_API_BASE or REACTOR_SITES)",
            param_hint="--sandbox-sites",
        )
    return names


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", type=PORT, default=None, help="Default: $PORT or 8000.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="gunicorn worker processes.")
@refusals_logged
def web(host: str, port: int | None, workers: int) -> None:
    """The webhook endpoint under gunicorn (what the Procfile's `web:` runs)."""
    settings = command_settings()
    serve_web(settings, os.environ, host, port or settings.port, workers)


def served_sites(settings: Settings, names: tuple[str, ...]) -> tuple[str, ...]:
    """The sites `--site` names, each checked against the configured ones (REACTOR_SITES and the home
    site); none named: every configured site."""
    for name in names:
        if name not in settings.site_names:
            known = ", ".join(settings.site_names) or "none"
            raise click.BadParameter(
                f"no Chargebee site named {name!r} is configured (sites: {known})", param_hint="--site"
            )
    return tuple(dict.fromkeys(names)) or settings.site_names


def site_chargebee_settings(settings: Settings) -> Settings:
    """chargebee_settings (the local sandbox when nothing is configured) for a deployment with a home
    site; one whose sites are all named in REACTOR_SITES has each site's API already."""
    return chargebee_settings(settings) if settings.home_site is not None else settings


@click.command()
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--name", default=None, help="Worker name (default: RQ's).")
@click.option(
    "--site",
    "sites",
    multiple=True,
    metavar="NAME",
    help="Serve only this Chargebee site's queue (repeatable; default: every configured site).",
)
@refusals_logged
def worker(burst: bool, name: str | None, sites: tuple[str, ...]) -> None:
    """An RQ worker for the reactor's jobs, with RQ's scheduler. It serves every configured Chargebee
    site's queue in turn (or those --site names), each job with its own site's API key, rate limit and
    data. Started before Redis answers, it waits for it (REACTOR_REDIS_WAIT); a bad configuration or
    rules file stops it at once. SIGTERM or SIGINT stops it cleanly from here on, its wait for Redis
    included."""
    raise_stop_on_signals()
    try:
        settings = site_chargebee_settings(command_settings())
        served = served_sites(settings, sites)
        check_rules(settings)  # before the wait: only an unreachable Redis is worth waiting for
        connection = connect(settings, wait=True)
        run_worker(settings, connection, burst=burst, name=name, sites=served)
    except StopRequested as stop:
        log.info("stopped on %s before the worker started", stop)
    except RulesError as exc:  # the file was broken while we waited
        raise click.ClickException(f"rules file refused:\n{exc}") from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=PORT, default=8001, show_default=True)
@click.option("--no-seed", is_flag=True, help="Start empty instead of with the demo invoices.")
def sandbox(host: str, port: int, no_seed: bool) -> None:
    """A local Chargebee stand-in (invoices, write_off, faults) for demos and tests."""
    from ..sandbox import SandboxState, seed_demo, serve  # late: start-up time (Flask)

    state = SandboxState()
    if not no_seed:
        seed_demo(state)
    serve(host, port, state)


@click.command()
@refusals_logged
def cron() -> None:
    """Run the sweep on schedule (REACTOR_SWEEP_CRON, or every REACTOR_SWEEP_INTERVAL seconds), one per
    Chargebee site on that site's queue, archive each site's audit trail (REACTOR_AUDIT_ARCHIVE, every
    REACTOR_AUDIT_ARCHIVE_INTERVAL seconds), and send the digest of what a person must act on to
    REACTOR_NOTIFY_URL.

    RQ's cron scheduler enqueues the sweep job; workers run it. Run one `cron` process (it does
    not elect a leader); a second one only makes sweeps that find the first one's lock and stop,
    and digest rounds that find the first one's lock. The digest is sent from a thread of this
    process (reactor/console/notify.py), so a slow receiver holds up no worker. Started before Redis
    answers, it waits for it (REACTOR_REDIS_WAIT). The archive runs in a thread too
    (reactor/console/archiving.py), one round per site; two `cron` processes take turns through its
    lock. That thread also lets approvals older than REACTOR_APPROVAL_TTL lapse on every site."""
    settings = command_settings()
    connection = connect(settings, wait=True)
    if settings.notify_url:
        start_notifier(settings, connection)
        log.info("sending a digest of what needs a person every %s s (REACTOR_NOTIFY_URL)", settings.notify_interval)
    archiver = start_archiver(settings, connection)
    log.info(
        "archiving the audit trail to %s every %s s%s, and letting stale approvals lapse",
        archive_name(settings.audit_archive_url),
        settings.audit_archive_interval,
        " (each other site's under sites/<name>)" if settings.several_sites else "",
    )
    try:
        run_cron_scheduler(settings, connection)
    finally:
        archiver.stop()  # a round under way finishes, and releases its lock for the next process


def run_cron_scheduler(settings: Settings, connection: redis.Redis) -> None:
    """RQ's cron scheduler for the sweep until a stop signal; without sweeps, wait for one."""
    from rq.cron import CronScheduler  # late: start-up time (croniter)

    if not settings.sweep_interval and not settings.sweep_cron:
        log.info("sweeps are disabled (REACTOR_SWEEP_CRON is empty); waiting for a stop signal")
        raise_stop_on_signals()
        try:
            signal.pause()
        except StopRequested as stop:
            log.info("stopped on %s", stop)
        return
    scheduler = CronScheduler(connection=connection)
    for site in settings.sites:  # each site's sweep on its own queue: its worker runs it with its context
        scheduler.register(
            scheduled_sweep,
            queue_name=site.queue_name(settings.queue_name),
            interval=settings.sweep_interval or None,
            cron=None if settings.sweep_interval else settings.sweep_cron,
            job_timeout=SWEEP_JOB_TIMEOUT,
            name="sweep" if site.home else f"sweep:{site.name}",
        )
    when = f"every {settings.sweep_interval} s" if settings.sweep_interval else f"on '{settings.sweep_cron}' (UTC)"
    log.info("sweeping unpaid invoices %s (sites: %s)", when, ", ".join(settings.site_names))
    scheduler.start()


COMMANDS = (run, web, worker, cron, sandbox)
