"""The digest sender: `reactor cron` runs `Notifier.run` in a thread, which every
REACTOR_NOTIFY_INTERVAL seconds turns new dead letters into notices and sends the notices waiting
in Redis (reactor/notices.py) as one message to REACTOR_NOTIFY_URL, a Slack-compatible incoming
webhook (`POST {"text": ...}`). Jobs only append notices: nothing else waits for the receiver.

One sender serves the deployment: it reads every Chargebee site's notices and dead letters (each
under its site's key prefix) into one digest, each line naming its site when there are several,
under one lock under the deployment's prefix.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

import redis
import requests
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry

from ..config import Settings
from ..keys import Keys
from ..notices import Notices
from ..redaction import REDACTED, Redactor
from ..rules.money import to_major
from .approvals import expire_approvals, waiting
from .deadletters.letters import exception_line
from .http_deadline import Deadline, DeadlineSession
from .tally import DailyWriteOffs, daily_write_offs

log = logging.getLogger(__name__)

MAX_PER_DIGEST = 1000
"""Notices one message carries; more wait for the next message."""
MAX_LINES = 10
"""Lines listed per kind; the rest are counted."""
MAX_BACKOFF = 600
"""Longest pause, in seconds, between tries while the receiver fails."""
POST_DEADLINE = 10.0
"""Seconds the receiver has for its whole answer, from the connection to the last byte."""

HEADINGS = {
    "dead_letter": "new dead letters (reactor dlq list, dlq show JOB_ID, dlq replay JOB_ID)",
    "held": "write-offs held for a person (reactor held list, held release INVOICE_ID)",
    "approval": "write-offs waiting for approvers (reactor approvals list, approvals approve INVOICE_ID --user NAME)",
    "approval_late": "write-offs waiting longer than REACTOR_APPROVAL_ALERT_AFTER (reactor approvals list)",
    "undone": "write-offs undone by a person, held until released (reactor held list, held release INVOICE_ID)",
    "budget": "budgets used up (limits in rules.yaml)",
    "rules_refused": "rules edits refused; the rules before them stay in force (reactor rules check)",
    "chargebee_auth": "Chargebee refused the API key (CHARGEBEE_API_KEY, CHARGEBEE_SITE)",
    "audit_archive": "the audit archive cannot be written; Redis keeps the records meanwhile (REACTOR_AUDIT_ARCHIVE)",
    "audit_verify": "the audit archive failed verification (reactor audit verify)",
    "recovery": "money paid after our write-off (reactor recover INVOICE_ID; reactor report bad-debt)",
}

_CREDENTIAL_SHAPES = (
    (re.compile(r"(?i)\b(basic|bearer)\s+[A-Za-z0-9+/=._~-]{8,}"), r"\1 " + REDACTED),
    (
        re.compile(r"(?i)\b(authorization|api[_-]?key|password|passwd|secret|token)(\"?\s*[:=]\s*)\S+"),
        r"\1\2" + REDACTED,
    ),
    (re.compile(r"://[^/\s:@]+:[^/\s@]+@"), "://" + REDACTED + "@"),
)


def scrub(text: str, secrets: Iterable[str] | Redactor) -> str:
    """`text` without any of `secrets` (as reactor/redaction.py redacts them: values of
    MIN_SECRET_LENGTH characters or more) nor anything shaped like a credential (an Authorization
    value, `password=...`, user:password@ in a URL)."""
    text = (secrets if isinstance(secrets, Redactor) else Redactor(secrets))(text)
    for pattern, replacement in _CREDENTIAL_SHAPES:
        text = pattern.sub(replacement, text)
    return text


URLLIB3_LOGGERS = ("urllib3.connection", "urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry")
"""urllib3's loggers that name a request's URL or path."""


class ScrubLogFilter(logging.Filter):
    """Scrubs each line of the loggers it is on, as `scrub` does a message (the exception's class
    name stays; its message and traceback, which may quote the URL, are dropped)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a line that cannot be formatted is the handler's to report
            return True
        scrubbed = scrub(message, self.secrets)
        if record.exc_info and record.exc_info[0] is not None:
            scrubbed += f" ({record.exc_info[0].__name__})"
            record.exc_info, record.exc_text = None, None
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


_URLLIB3_SCRUB = ScrubLogFilter()


def hide_in_urllib3_logs(url: str) -> None:
    """Redact `url`, its path and its query from urllib3's log lines in this process: they carry
    the receiver's token, and urllib3 logs the path of every request at debug level and the whole
    URL when an answer's headers are malformed."""
    parts = urlsplit(url)
    prepared = requests.Request("POST", url).prepare()
    path_and_query = parts.path + (f"?{parts.query}" if parts.query else "")
    for secret in (url, prepared.url or "", prepared.path_url, path_and_query, parts.query):
        if len(secret) > 1:  # "/" alone is no secret
            _URLLIB3_SCRUB.secrets.add(secret)
    for name in URLLIB3_LOGGERS:
        logging.getLogger(name).addFilter(_URLLIB3_SCRUB)  # once: addFilter skips a filter already on


def receiver_name(url: str) -> str:
    """The receiver as a log line may name it: scheme, host and port, never credentials, path or query."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


@dataclass(frozen=True)
class Notice:
    n: int
    kind: str
    text: str
    at: str
    site: str = ""  # named in the digest's line when the deployment has several sites

    def line(self) -> str:
        return f"[{self.site}] {self.text}" if self.site else self.text


def digest(
    notices: list[Notice], dropped: int = 0, source: str = "chargebee-reactor", money: Iterable[str] = ()
) -> str:
    """The message: a count, then each kind with its heading, up to MAX_LINES lines and the rest
    counted, then `money`: today's write-offs as they stand (`money_lines`)."""
    total = len(notices) + dropped
    lines = [f"{source}: {total} {'thing needs' if total == 1 else 'things need'} a person"]
    kinds = [k for k in HEADINGS if any(n.kind == k for n in notices)]
    kinds += sorted({n.kind for n in notices} - set(HEADINGS))
    several = any(n.site for n in notices)
    for kind in kinds:
        texts = [n.line() for n in notices if n.kind == kind]
        heading = HEADINGS.get(kind, kind)
        if several:  # the commands on one invoice or job need its site
            heading = heading.replace("INVOICE_ID", "--site SITE INVOICE_ID").replace("JOB_ID", "--site SITE JOB_ID")
        lines.append(f"*{len(texts)} {heading}*")
        lines += [f"• {text}" for text in texts[:MAX_LINES]]
        if len(texts) > MAX_LINES:
            lines.append(f"• … and {len(texts) - MAX_LINES} more")
    if dropped:
        lines.append(f"*{dropped} older notices were dropped* while the receiver could not be reached")
    money = list(money)
    if money:
        lines.append("*written off today (UTC), net of undos*")
        lines += [f"• {line}" for line in money]
    return "\n".join(lines)


def money_lines(daily: DailyWriteOffs) -> list[str]:
    """One line per currency: what still stands of the write-offs read, and what was undone of them."""
    lines = []
    for currency in daily.currencies():
        written, undone, net = daily.totals(currency)
        line = f"{to_major(net, currency)} {currency}"
        if undone:
            line += (
                f" ({to_major(written, currency)} {currency} written off, {to_major(undone, currency)} undone since)"
            )
        lines.append(line)
    return lines


class SiteState:
    """One site's part of the digest: its notices stream, its dead letters (its queue's
    FailedJobRegistry) and what of them was told, its audit trail for today's money."""

    def __init__(self, settings: Settings, connection: redis.Redis, named: bool):
        self.name = settings.site_name if named else ""
        self.keys = Keys(settings.key_prefix)
        self.notices = Notices(connection, settings.key_prefix)
        self.registry = FailedJobRegistry(queue=Queue(settings.queue_name, connection=connection))


class Notifier:
    """Tells new dead letters and sends the digest, for every site; `run` repeats it until `stop` is set."""

    def __init__(self, settings: Settings, connection: redis.Redis, deadline: float = POST_DEADLINE):
        if not settings.notify_url:
            raise ValueError("REACTOR_NOTIFY_URL is not set")
        self.settings = settings
        self.url = settings.notify_url
        self.receiver = receiver_name(self.url)
        self.deadline = deadline
        self.redis = connection
        self.keys = Keys(settings.deployment_key_prefix)  # the lock: one sender for the deployment
        several = settings.several_sites
        self.sites = [SiteState(settings.for_site(name), connection, several) for name in settings.site_names]
        if settings.home_site is None:  # no site keeps the deployment's prefix: its notices (rules edits) too
            self.sites.insert(0, SiteState(settings.unscoped or settings, connection, named=False))
        self.secrets = Redactor(settings.secrets)
        if several:
            self.source = f"chargebee-reactor ({len(self.sites)} sites: {', '.join(settings.site_names)})"
        else:
            home = settings.chargebee_site or ("sandbox" if settings.sandbox_mode else "api")
            self.source = f"chargebee-reactor ({home})"
        self.session = DeadlineSession()
        self.failures = 0
        hide_in_urllib3_logs(self.url)

    # -- one round ---------------------------------------------------------------------------------

    def tell_dead_letters(self) -> int:
        """Append a notice for each dead letter not told yet, on every site (RQ's FailedJobRegistry of
        the site's queue, however a job got there: its last retry, a refused request, an abandoned
        job); forget told ones that left the registry."""
        return sum(self._tell_site(site) for site in self.sites)

    def _tell_site(self, site: SiteState) -> int:
        present = {m.decode() for m in self.redis.zrange(site.registry.key, 0, -1)}
        told = {m.decode() for m in self.redis.smembers(site.keys.notified_dead_letters())}
        new = [
            job_id for job_id in sorted(present - told) if site.notices.add("dead_letter", self._letter_line(job_id))
        ]
        with self.redis.pipeline(transaction=True) as pipe:
            if new:
                pipe.sadd(site.keys.notified_dead_letters(), *new)
            gone = told - present
            if gone:
                pipe.srem(site.keys.notified_dead_letters(), *gone)
            pipe.execute()
        return len(new)

    def tell_late_approvals(self) -> int:
        """On every site: let approvals older than REACTOR_APPROVAL_TTL lapse (recorded), and append a
        notice, once each, for a write-off that has waited for approvers past REACTOR_APPROVAL_ALERT_AFTER."""
        settings, now = self.settings, datetime.now(timezone.utc)
        told = 0
        for site in self.sites:
            prefix = site.keys.prefix
            expire_approvals(self.redis, prefix=prefix, approval_ttl=settings.approval_ttl, now=now)
            for item in waiting(self.redis, prefix):
                waited = item.waited(now)
                if waited is None or waited <= settings.approval_alert_after:
                    continue
                line = (
                    f"{item.invoice_id}: {item.amount_text()} has waited {waited / 3600:.0f} h for tier {item.tier}"
                    f" ({len(item.approvers)} of {item.approvers_needed} approvers)"
                )
                once = f"approval_late:{item.invoice_id}:{item.held_at}"
                told += site.notices.add("approval_late", line, once=once, once_ttl=settings.approval_ttl)
        return told

    def _letter_line(self, job_id: str) -> str:
        try:
            job = Job.fetch(job_id, connection=self.redis)
            result = job.latest_result()
            error = exception_line(result.exc_string or "") if result else ""
            invoice = (job.meta or {}).get("invoice_id")
        except Exception as exc:  # a job RQ cannot read still makes a line
            error, invoice = exc.__class__.__name__, None
        return f"{job_id}" + (f" (invoice {invoice})" if invoice else "") + (f": {error}" if error else "")

    def _pending_of(self, site: SiteState, count: int) -> tuple[list[Notice], int, str | None]:
        entries = self.redis.xrange(site.keys.notices(), count=count) if count > 0 else []
        notices = []
        for _, fields in entries:
            data = {k.decode(): v.decode(errors="replace") for k, v in fields.items()}
            notices.append(
                Notice(
                    int(data.get("n") or 0),
                    data.get("kind", ""),
                    data.get("text", ""),
                    data.get("at", ""),
                    site.name,
                )
            )
        sent = int(self.redis.get(site.keys.notices_sent()) or 0)
        dropped = max(notices[0].n - sent - 1, 0) if notices else 0
        return notices, dropped, entries[-1][0].decode() if entries else None

    def pending_by_site(self) -> list[tuple[SiteState, list[Notice], int, str | None]]:
        """Each site's notices waiting (oldest first; at most MAX_PER_DIGEST in all, the first sites'
        first), how many were trimmed unsent, and the stream id of the last one read."""
        found, room = [], MAX_PER_DIGEST
        for site in self.sites:
            notices, dropped, last_id = self._pending_of(site, room)
            room -= len(notices)
            found.append((site, notices, dropped, last_id))
        return found

    def pending(self) -> tuple[list[Notice], int, str | None]:
        """Every site's notices waiting, how many were trimmed unsent, and the last stream id read
        (the last site's with any)."""
        parts = self.pending_by_site()
        notices = [notice for _, mine, _, _ in parts for notice in mine]
        last = next((last_id for _, _, _, last_id in reversed(parts) if last_id), None)
        return notices, sum(dropped for _, _, dropped, _ in parts), last

    def send(self) -> bool | None:
        """Send what waits, on every site, as one message: True sent, False the receiver failed (kept
        for later), None nothing waited.

        A notice leaves Redis only once the receiver answered 2xx in full within the deadline
        (`post`), so a receiver that trickles its answer holds the thread no longer and counts as
        failed; `run` tries again after a growing pause. The message never holds a secret: every
        configured credential (`Settings.secrets`: every site's Chargebee key and webhook
        credentials, the dashboard and session secrets, the notify URL itself, Redis's passwords)
        and anything shaped like one is replaced by `[redacted]` (`scrub`), whatever line carried
        it; a log line names the receiver by scheme and host only (`receiver_name`), and urllib3's
        lines have the URL redacted (`hide_in_urllib3_logs`)."""
        parts = self.pending_by_site()
        notices = [notice for _, mine, _, _ in parts for notice in mine]
        if not notices:
            return None
        dropped = sum(dropped for _, _, dropped, _ in parts)
        text = scrub(digest(notices, dropped, self.source, self.money_today()), self.secrets)
        why = self.post(text)
        if why is not None:
            log.warning("notify: %s %s; %d notices kept", self.receiver, why, len(notices))
            return False
        with self.redis.pipeline(transaction=True) as pipe:
            for site, mine, _, last_id in parts:
                if mine and last_id is not None:
                    pipe.xtrim(site.keys.notices(), minid=_after(last_id))
                    pipe.set(site.keys.notices_sent(), mine[-1].n)
            pipe.execute()
        log.info("notify: sent a digest of %d notices", len(notices))
        return True

    def money_today(self) -> list[str]:
        """Today's write-offs (UTC) as they stand, per site and currency, folded from each site's
        audit trail as /metrics and the dashboard's chart are (reactor/console/tally.py): net of undos."""
        today = datetime.now(timezone.utc).date()
        lines = []
        for site in self.sites:
            mine = money_lines(daily_write_offs(self.redis, site.keys.audit(), today, today))
            lines += [f"[{site.name}] {line}" if site.name else line for line in mine]
        return lines

    def post(self, text: str) -> str | None:
        """POST the message within the deadline (connect, headers and body: reactor/console/
        http_deadline.py): None when the receiver took it (2xx, the whole answer in time), else why
        not, without the URL."""
        with Deadline(self.deadline) as deadline:
            try:
                response = self.session.post(
                    self.url, json={"text": text}, timeout=self.deadline, allow_redirects=False
                )
                why = None if 200 <= response.status_code < 300 else f"answered HTTP {response.status_code}"
            except Exception as exc:  # its message may name the URL: only its class is told
                why = f"could not be reached ({exc.__class__.__name__})"
        if deadline.expired:  # whatever came back was cut short
            self.session.close()  # its connection is shut: none to reuse
            return f"gave no complete answer within {self.deadline:g} s"
        return why

    def round(self) -> bool | None:
        """One round under the lock (two `cron` processes tell and send each notice once): new dead
        letters, then the digest. None when another process holds the lock or nothing waited;
        False when Redis or the receiver failed."""
        try:
            lock = self.redis.lock(self.keys.notify_lock(), timeout=int(self.deadline) + 30)
            if not lock.acquire(blocking=False):
                return None
            try:
                self.tell_dead_letters()
                self.tell_late_approvals()
                return self.send()
            finally:
                try:
                    lock.release()
                except redis.exceptions.LockError:
                    log.warning("notify: the lock expired during the round")
        except redis.RedisError as exc:
            log.warning("notify: Redis unavailable: %s", exc)
            return False

    # -- the loop ----------------------------------------------------------------------------------

    def pause(self) -> float:
        """Seconds to the next round: the interval, doubled for each failure in a row, at most MAX_BACKOFF."""
        interval = self.settings.notify_interval
        return float(min(interval * 2 ** min(self.failures, 16), max(MAX_BACKOFF, interval)))

    def run(self, stop: threading.Event) -> None:
        """Rounds until `stop` is set. A failed round waits longer before the next."""
        log.info("notify: digests every %d s", self.settings.notify_interval)
        while not stop.is_set():
            try:
                outcome = self.round()
            except Exception:  # the notifier must outlive anything a round meets
                log.exception("notify: the round failed")
                outcome = False
            self.failures = self.failures + 1 if outcome is False else 0
            stop.wait(self.pause())


def _after(stream_id: str) -> str:
    """The smallest stream id after `stream_id`: XTRIM MINID keeps ids from it on."""
    millis, _, seq = stream_id.partition("-")
    return f"{millis}-{int(seq or 0) + 1}"


def start_notifier(settings: Settings, connection: redis.Redis) -> tuple[threading.Thread, threading.Event]:
    """`Notifier.run` in a daemon thread; set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=Notifier(settings, connection).run, args=(stop,), name="notify", daemon=True)
    thread.start()
    return thread, stop
