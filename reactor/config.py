"""Settings, read once from the environment (and an optional `.env`) and validated at start.

Everything below `config` receives a `Settings`; nothing else interprets an environment variable,
so a test builds the settings it wants and passes them in. Two smaller readers serve what starts
before any `Settings` exists: `web_server_settings` for gunicorn's config file
(reactor/gunicorn_conf.py) and `log_settings` for logging. Each reader is a pure function of an
`env` mapping; the process's own environment is read at its edge (gunicorn_conf, the `reactor`
command, `load_settings()` without an `env`) and passed in. A bad value is refused with a one-line
`ConfigError` that names the variable.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from dotenv import dotenv_values

from .sites import HOME_WITHOUT_NAME, Site, SiteConfigError, read_site, site_names

DEFAULT_RETRY_INTERVALS = (10, 30, 120, 600, 1800)
"""Seconds between attempts of a failing Chargebee call (429/5xx/timeouts): about 45 minutes in all
before the job is left in the dead-letter registry. A Retry-After from Chargebee lengthens a step."""


EX_CONFIG = 78
"""The exit status of a process that refuses to start on a bad configuration (78, sysexits.h's
EX_CONFIG): a wrong Redis password, a refused rules file, a missing setting. `reactor run` does not
start such a process again (reactor/local/children.py), and a process manager can be told not to
(systemd's RestartPreventExitStatus=78). Waiting for Redis that ran out exits 1, which is worth a
restart."""


DEFAULT_RELIEF_DELAYS: tuple[tuple[str, int], ...] = (("GB", 6), ("DE", 0))
"""Months after the later of an invoice's due date and its date before VAT bad-debt relief may be
claimed, per billing country: GB 6 (HMRC VAT Notice 700/18), DE 0 (§17(2) UStG corrects at once).
A country not listed has no rule: the bad-debt register says so, never a guess."""


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None
    chargebee_site: str | None = None
    chargebee_api_key: str = field(default="", repr=False)
    chargebee_api_base: str | None = None
    webhook_auth: str = "basic"  # "basic" | "none"
    webhook_user: str = ""
    webhook_password: str = field(default="", repr=False)
    rules_path: Path = Path("rules.yaml")
    port: int = 8000
    var_dir: Path = Path("var")
    queue_name: str = "reactor"
    key_prefix: str = "reactor"
    max_body_bytes: int = 1024 * 1024
    dedupe_ttl: int = 4 * 24 * 3600
    event_ttl: int = 30 * 24 * 3600
    http_timeout: float = 20.0
    retry_intervals: tuple[int, ...] = DEFAULT_RETRY_INTERVALS
    job_timeout: int = 180
    lock_ttl: int = 0  # 0: derived, see invoice_lock_ttl
    redis_socket_timeout: float = 2.0
    replica_ack: str = "auto"  # REACTOR_REPLICA_ACK: auto, on or off (reactor/ingest/replication.py)
    replica_ack_timeout: float = 1.0  # REACTOR_REPLICA_ACK_TIMEOUT: seconds the accept WAITs for a replica
    admin_user: str = ""  # the /admin dashboard is off (404) until both are set
    admin_password: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)  # signs dashboard sessions; unset: one kept in Redis
    admin_insecure_cookie: bool = False  # True: the dashboard's cookie lacks `Secure` (plain-HTTP use only)
    chargebee_rate_limit: int = 150  # calls per window, shared by every worker (test sites: 150/min)
    rate_limit_window: int = 60  # seconds; Chargebee counts per minute, tests shorten it
    rate_limit_max_wait: float = 10.0  # longest a call waits for a slot before its job is deferred
    abandoned_after: int = 60  # seconds without a worker heartbeat before a started job is retried
    maintenance_interval: int = 30  # how often workers look for abandoned jobs
    worker_class: str = "fork"  # "fork": a work horse per job (isolation); "simple": jobs run in the worker process
    sweep_cron: str = "0 */6 * * *"  # when `reactor cron` runs the sweep; "" = never
    sweep_interval: int = 0  # seconds between sweeps instead of sweep_cron (0 = use sweep_cron)
    verify_events: bool = False  # re-fetch every event from Chargebee and act only on its copy
    triage: bool = True  # events go to the inbox and are decided in batches; off: an RQ job per event
    webhook_allow: tuple[str, ...] = ()  # CIDRs the webhook accepts; empty: any address (docs/security.md)
    trusted_proxies: int = 0  # proxies in front of the web whose X-Forwarded-For entries are believed
    auth_failure_limit: str = "20/minute"  # failed webhook logins per client address before 429
    metrics_dir: str | None = None  # PROMETHEUS_MULTIPROC_DIR: gunicorn workers' samples (gunicorn_conf sets it)
    redis_server_binary: str | None = None  # REACTOR_REDIS_SERVER: the redis-server `reactor run` starts
    notify_url: str | None = field(default=None, repr=False)  # REACTOR_NOTIFY_URL: where digests go; None: off
    notify_interval: int = 30  # REACTOR_NOTIFY_INTERVAL: seconds between digests (reactor/console/notify.py)
    redis_wait: float | None = None  # REACTOR_REDIS_WAIT: seconds `worker`, `cron` and web wait at start; None: forever
    audit_archive: str | None = None  # REACTOR_AUDIT_ARCHIVE: a directory or fsspec URL; None: var_dir/audit-archive
    audit_segment_records: int = 50_000  # REACTOR_AUDIT_SEGMENT_RECORDS: most records in one archive segment
    audit_segment_seconds: int = 3600  # REACTOR_AUDIT_SEGMENT_SECONDS: a segment holds one such UTC window
    audit_keep: int = 1_000_000  # REACTOR_AUDIT_KEEP: archived records the stream keeps for quick reads
    audit_archive_interval: int = 60  # REACTOR_AUDIT_ARCHIVE_INTERVAL: seconds between `cron`'s archive rounds
    approval_ttl: int = 7 * 24 * 3600  # REACTOR_APPROVAL_TTL: seconds an approval counts (reactor/console/approvals.py)
    approval_alert_after: int = 24 * 3600  # REACTOR_APPROVAL_ALERT_AFTER: a write-off waiting longer is a notice
    session_idle: int = 3600  # REACTOR_SESSION_IDLE: seconds a dashboard session lives without a request
    dashboard_users: bool = False  # REACTOR_DASHBOARD=on: the dashboard for named users without REACTOR_ADMIN_USER
    users_file: str | None = None  # REACTOR_USERS_FILE: named users in this file instead of Redis
    relief_delays: tuple[tuple[str, int], ...] = DEFAULT_RELIEF_DELAYS  # REACTOR_RELIEF_DELAYS: country → months
    other_sites: tuple[Site, ...] = ()  # REACTOR_SITES besides the home site (reactor/sites.py)
    home_configured: bool = True  # False: REACTOR_SITES alone configures Chargebee, there is no home site
    site_name: str = ""  # the site these settings are scoped to (`for_site`); "" : the deployment's
    deployment_prefix: str = ""  # the deployment's key prefix once `for_site` scoped `key_prefix`
    deployment_queue: str = ""  # the deployment's queue name once `for_site` scoped `queue_name`
    unscoped: Settings | None = field(default=None, repr=False, compare=False)  # what `for_site` scoped

    @property
    def invoice_lock_ttl(self) -> int:
        """How long a per-invoice lock outlives its last renewal. The holder renews it before each
        Chargebee call, so it must cover one call: a wait for a rate-limit slot plus the HTTP timeout,
        plus a margin. A holder that dies (SIGKILL) blocks its invoice for at most this long."""
        return self.lock_ttl or math.ceil(self.http_timeout + self.rate_limit_max_wait) + 5

    @property
    def heartbeat_interval(self) -> int:
        """How often a busy worker tells Redis it is alive; a third of the abandonment delay."""
        return max(1, self.abandoned_after // 3)

    @property
    def audit_archive_url(self) -> str:
        """Where the audit archive is: REACTOR_AUDIT_ARCHIVE, else `audit-archive` in the var directory; a
        site other than the home site keeps its own under `sites/<name>` there."""
        root = self.audit_archive or str(self.var_dir / "audit-archive")
        if self.site_name and self.key_prefix != self.deployment_key_prefix:
            return f"{root.rstrip('/')}/sites/{self.site_name}"
        return root

    @property
    def sandbox_mode(self) -> bool:
        """No Chargebee configured: the reactor talks to its local stand-in."""
        return not self.chargebee_site and not self.chargebee_api_base and not self.other_sites

    @property
    def home_site(self) -> Site | None:
        """The site configured as before several sites existed (CHARGEBEE_SITE or CHARGEBEE_API_BASE, or
        the sandbox): it keeps the deployment's keys and queue. None when only REACTOR_SITES names sites."""
        if self.unscoped is not None:  # scoped: the home site's fields may now hold another site's
            return self.unscoped.home_site
        if not self.home_configured:
            return None
        return Site(
            name=self.chargebee_site or HOME_WITHOUT_NAME,
            api_base=self.api_base,
            api_key=self.chargebee_api_key,
            rate_limit=self.chargebee_rate_limit,
            webhook_user=self.webhook_user,
            webhook_password=self.webhook_password,
            home=True,
        )

    @property
    def sites(self) -> tuple[Site, ...]:
        """Every site this deployment serves, the home site first."""
        home = self.home_site
        return ((home,) if home else ()) + self.other_sites

    @property
    def site_names(self) -> tuple[str, ...]:
        return tuple(site.name for site in self.sites)

    @property
    def several_sites(self) -> bool:
        return len(self.sites) > 1

    def site(self, name: str) -> Site:
        """The site named `name`; an unknown name is refused with the names there are."""
        for site in self.sites:
            if site.name == name:
                return site
        known = ", ".join(self.site_names) or "none"
        raise ConfigError(f"no Chargebee site named {name!r} is configured (sites: {known})")

    def for_site(self, name: str) -> Settings:
        """These settings scoped to one site: its API, key, rate limit and webhook credentials, and its
        key prefix and queue, so that everything given them reads and writes that site's data only."""
        base = self.unscoped or self
        site = base.site(name)
        if site.home:
            return replace(
                base,
                site_name=site.name,
                deployment_prefix=base.key_prefix,
                deployment_queue=base.queue_name,
                unscoped=base,
            )
        return replace(
            base,
            chargebee_site=site.name,
            chargebee_api_base=site.api_base,
            chargebee_api_key=site.api_key,
            chargebee_rate_limit=site.rate_limit,
            webhook_user=site.webhook_user,
            webhook_password=site.webhook_password,
            key_prefix=site.key_prefix(base.key_prefix),
            queue_name=site.queue_name(base.queue_name),
            site_name=site.name,
            deployment_prefix=base.key_prefix,
            deployment_queue=base.queue_name,
            unscoped=base,
        )

    @property
    def deployment_key_prefix(self) -> str:
        """The deployment's own key prefix, whichever site these settings are scoped to: where what no
        site owns lives (dashboard sessions and users, rules reloads)."""
        return self.deployment_prefix or self.key_prefix

    @property
    def api_base(self) -> str | None:
        if self.chargebee_api_base:
            return self.chargebee_api_base.rstrip("/")
        if self.chargebee_site:
            return f"https://{self.chargebee_site}.chargebee.com/api/v2"
        return None

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret these settings hold, every site's included, as text may carry it
        (reactor/redaction.py redacts them)."""
        found = secret_values(
            api_key=self.chargebee_api_key,
            webhook=(self.webhook_user, self.webhook_password),
            admin=(self.admin_user, self.admin_password),
            secret_key=self.secret_key,
            notify_url=self.notify_url or "",
            redis_url=self.redis_url or "",
        )
        for site in self.other_sites:
            found += secret_values(
                api_key=site.api_key,
                webhook=(site.webhook_user, site.webhook_password),
                admin=("", ""),
                secret_key="",
                notify_url="",
                redis_url="",
            )
        if self.unscoped is not None:
            found += self.unscoped.secrets
        return tuple(dict.fromkeys(found))


NOTIFY_TOKEN_PATH = 12
"""Shortest notify URL path redacted on its own (Slack's /services/T.../B.../... is about 60)."""


def secret_values(
    *,
    api_key: str,
    webhook: tuple[str, str],
    admin: tuple[str, str],
    secret_key: str,
    notify_url: str,
    redis_url: str,
) -> tuple[str, ...]:
    """Each secret, and the forms text may carry it in: the Basic-auth header value of each
    user:password pair (the API key is a user with an empty password), the passwords inside
    REDIS_URL (Redis's and the sentinels'), and the notify URL's path and query, which hold its
    token (an HTTP client's log names the path without the host). Unset ones are left out."""
    found = [api_key, webhook[1], admin[1], secret_key]
    pairs = [(api_key, "")] if api_key else []
    for user, password in [*pairs, *(pair for pair in (webhook, admin) if pair[1])]:
        found.append(base64.b64encode(f"{user}:{password}".encode()).decode())
    if notify_url:
        found.append(notify_url)
        try:
            parts = urlsplit(notify_url)
        except ValueError:
            parts = None
        if parts is not None:  # a short path holds no token, and would blank common text such as /api
            found += [parts.path if len(parts.path) >= NOTIFY_TOKEN_PATH else "", parts.query]
    if redis_url:
        found += _url_passwords(redis_url)
    return tuple(dict.fromkeys(value for value in found if value))


def _url_passwords(url: str) -> list[str]:
    """The password of a URL's user information (as written and decoded) and every `...password=`
    of its query."""
    try:
        parts = urlsplit(url)
        password, query = parts.password, parts.query
    except ValueError:  # a malformed URL: what looks like its password
        credentials = url.split("://", 1)[-1].split("/", 1)[0].rpartition("@")[0]
        password, query = credentials.partition(":")[2], url.partition("?")[2]
    found = [password, unquote(password)] if password else []
    return found + [value for name, value in parse_qsl(query) if "password" in name.lower()]


def secrets_in(env: Mapping[str, str]) -> tuple[str, ...]:
    """The secrets an environment holds, unchecked: read at a process's edge, before (or whether or
    not) its settings are valid, so a refusal to start is redacted too. Every site's API key and
    webhook password count (`REACTOR_SITE_*_API_KEY`, `_WEBHOOK_PASSWORD`); a key file's content
    is not read here."""
    found = secret_values(
        api_key=env.get("CHARGEBEE_API_KEY", "").strip(),
        webhook=(env.get("REACTOR_WEBHOOK_USER", ""), env.get("REACTOR_WEBHOOK_PASSWORD", "")),
        admin=(env.get("REACTOR_ADMIN_USER", "").strip(), env.get("REACTOR_ADMIN_PASSWORD", "")),
        secret_key=env.get("REACTOR_SECRET_KEY", ""),
        notify_url=env.get("REACTOR_NOTIFY_URL", "").strip(),
        redis_url=env.get("REDIS_URL", "").strip(),
    )
    for name, value in env.items():
        if name.startswith("REACTOR_SITE_") and name.endswith(("_API_KEY", "_WEBHOOK_PASSWORD")) and value.strip():
            user = env.get(name.removesuffix("_PASSWORD") + "_USER", "") if name.endswith("_PASSWORD") else ""
            found += secret_values(
                api_key=value.strip() if name.endswith("_API_KEY") else "",
                webhook=(user, value) if name.endswith("_PASSWORD") else ("", ""),
                admin=("", ""),
                secret_key="",
                notify_url="",
                redis_url="",
            )
    return tuple(dict.fromkeys(found))


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _deadline(env: Mapping[str, str], name: str) -> float | None:
    """Seconds to wait for something before giving up: 0 or more; unset or blank: None (forever)."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds (or unset to wait forever), got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be 0 or more seconds (or unset to wait forever), got {raw!r}")
    return value


def _intervals(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return DEFAULT_RETRY_INTERVALS
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated seconds, e.g. 10,30,120; got {raw!r}") from None
    if not values or any(v < 0 for v in values):
        raise ConfigError(f"{name} must list one or more non-negative seconds, got {raw!r}")
    return values


def _relief_delays(env: Mapping[str, str], name: str) -> tuple[tuple[str, int], ...]:
    """`GB=6,DE=0,FR=6`: ISO country codes and whole months (0 to 120); empty: no country has a rule."""
    if name not in env:
        return DEFAULT_RELIEF_DELAYS
    delays: dict[str, int] = {}
    for part in (p.strip() for p in env[name].split(",")):
        if not part:
            continue
        country, _, months = part.partition("=")
        country = country.strip()
        if len(country) != 2 or not country.isascii() or not country.isupper() or not months.strip().isdigit():
            raise ConfigError(f"{name} must list COUNTRY=MONTHS pairs such as GB=6,DE=0; got {part!r}")
        if int(months) > 120:
            raise ConfigError(f"{name}: {country} waits {months} months, more than 120")
        delays[country] = int(months)
    return tuple(sorted(delays.items()))


def _cron(env: Mapping[str, str], name: str, default: str) -> str:
    """A five-field cron expression (UTC), or empty to disable."""
    if name not in env:
        return default
    value = " ".join(env[name].split())
    if value:
        from croniter import croniter  # late: start-up time (only a set REACTOR_SWEEP_CRON needs it)

        if not croniter.is_valid(value):
            raise ConfigError(f"{name} must be a cron expression such as '0 */6 * * *' (or empty), got {value!r}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128), validated now, not on the first request."""
    networks = []
    for part in filter(None, (p.strip() for p in env.get(name, "").split(","))):
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ConfigError(f"{name}: {part!r} is not an IP network such as 203.0.113.0/24") from None
    return tuple(networks)


def _rate(env: Mapping[str, str], name: str, default: str) -> str:
    from limits import parse  # late: start-up time (gunicorn's master reads this module, not limits)

    raw = env.get(name, "").strip() or default
    try:
        parse(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a rate such as 20/minute, got {raw!r}") from None
    return raw


WORKER_CLASSES = ("fork", "simple")


def _worker_class(env: Mapping[str, str]) -> str:
    """REACTOR_WORKER_CLASS: how RQ runs a job (docs/benchmarks.md has the figures behind the default)."""
    value = env.get("REACTOR_WORKER_CLASS", "").strip().lower() or Settings.worker_class
    if value not in WORKER_CLASSES:
        raise ConfigError(f"REACTOR_WORKER_CLASS must be 'fork' or 'simple', got {value!r}")
    return value


def _redis_url(env: Mapping[str, str]) -> str | None:
    """REDIS_URL: redis://, rediss://, unix:// or a Sentinel URL (reactor/redis_connect.py has the
    format), checked now. The refusal does not repeat the URL: it may hold a password."""
    from .redis_connect import RedisURLError, check_url  # late: start-up time (it loads redis-py)

    url = _text(env, "REDIS_URL") or None
    if url is not None:
        try:
            check_url(url)
        except RedisURLError as exc:
            raise ConfigError(f"REDIS_URL is malformed ({exc})") from None
    return url


REPLICA_ACK_MODES = ("auto", "on", "off")
REPLICA_ACK_MARGIN = 0.5
"""Seconds of the web's Redis socket timeout left to the WAIT's round trip: Redis ends a WAIT up to
1/hz late (0.1 s at its default hz 10), and the answer must still come back before the timeout."""


def _replica_ack(env: Mapping[str, str]) -> tuple[str, float]:
    """REACTOR_REPLICA_ACK and REACTOR_REPLICA_ACK_TIMEOUT. The WAIT's answer must arrive well before
    the web's Redis socket timeout: one that times out is sent again (the client's one retry), so an
    unconfirmed accept would cost two socket timeouts, a dropped connection and a misleading
    "redis unavailable" instead of one WAIT."""
    mode = _text(env, "REACTOR_REPLICA_ACK", Settings.replica_ack).lower()
    if mode not in REPLICA_ACK_MODES:
        raise ConfigError(f"REACTOR_REPLICA_ACK must be auto, on or off, got {mode!r}")
    timeout = _float(env, "REACTOR_REPLICA_ACK_TIMEOUT", Settings.replica_ack_timeout)
    longest = Settings.redis_socket_timeout - REPLICA_ACK_MARGIN
    if not 0.001 <= timeout <= longest:
        raise ConfigError(
            f"REACTOR_REPLICA_ACK_TIMEOUT must be from 0.001 to {longest:g} seconds ({REPLICA_ACK_MARGIN:g} s "
            f"under the web's Redis socket timeout of {Settings.redis_socket_timeout:g} s), got {timeout:g}"
        )
    return mode, timeout


def _text(env: Mapping[str, str], name: str, default: str = "") -> str:
    """The variable without surrounding blanks; unset or blank gives `default`."""
    return env.get(name, "").strip() or default


def _metrics_dir(env: Mapping[str, str]) -> str | None:
    """PROMETHEUS_MULTIPROC_DIR, prometheus-client's own variable: where each gunicorn worker writes
    its samples for /metrics to add up. Unset or empty: this process keeps its samples itself."""
    return env.get("PROMETHEUS_MULTIPROC_DIR") or None


def _webhook_auth(env: Mapping[str, str]) -> tuple[str, str, str]:
    """REACTOR_WEBHOOK_AUTH, REACTOR_WEBHOOK_USER, REACTOR_WEBHOOK_PASSWORD."""
    auth = _text(env, "REACTOR_WEBHOOK_AUTH", "basic").lower()
    if auth not in ("basic", "none"):
        raise ConfigError(f"REACTOR_WEBHOOK_AUTH must be 'basic' or 'none', got {auth!r}")
    return auth, env.get("REACTOR_WEBHOOK_USER", ""), env.get("REACTOR_WEBHOOK_PASSWORD", "")


def _chargebee(env: Mapping[str, str]) -> tuple[str | None, str | None, str]:
    """CHARGEBEE_SITE, CHARGEBEE_API_BASE and CHARGEBEE_API_KEY, which either of the first two needs."""
    site = _text(env, "CHARGEBEE_SITE") or None
    api_base = _text(env, "CHARGEBEE_API_BASE") or None
    api_key = _text(env, "CHARGEBEE_API_KEY")
    if (site or api_base) and not api_key:
        raise ConfigError("CHARGEBEE_API_KEY is required when CHARGEBEE_SITE or CHARGEBEE_API_BASE is set")
    if site and ("." in site or "/" in site):
        raise ConfigError(f"CHARGEBEE_SITE is the site name only (e.g. 'acme-test'), got {site!r}")
    return site, api_base, api_key


def _sites(
    env: Mapping[str, str], home: str | None, home_api_base: str | None, webhook_auth: str
) -> tuple[tuple[Site, ...], bool]:
    """REACTOR_SITES and each listed site's `REACTOR_SITE_<NAME>_*` (reactor/sites.py). The home site
    (CHARGEBEE_SITE, or CHARGEBEE_API_BASE) may be listed too; it keeps its own variables. Returns the
    other sites and whether there is a home site: without REACTOR_SITES there always is one (the sandbox
    when nothing is configured)."""
    try:
        names = site_names(env.get("REACTOR_SITES", ""))
        if not names:
            return (), True
        home_configured = bool(home or home_api_base)
        home_name = (home or HOME_WITHOUT_NAME) if home_configured else None
        rate_limit = _int(env, "REACTOR_CHARGEBEE_RATE_LIMIT", 150, minimum=1)
        listed = [name for name in names if name != home_name]
        others = tuple(read_site(env, name, rate_limit=rate_limit, webhook_auth=webhook_auth) for name in listed)
    except SiteConfigError as exc:
        raise ConfigError(str(exc)) from None
    return others, home_configured


def _notify_url(env: Mapping[str, str]) -> str | None:
    """REACTOR_NOTIFY_URL: a Slack-compatible incoming webhook (POST `{"text": ...}`), or unset.
    The URL carries the receiver's token, so a refusal names what is wrong, never the URL."""
    raw = _text(env, "REACTOR_NOTIFY_URL")
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in raw):
        raise ConfigError(
            "REACTOR_NOTIFY_URL must be an http(s) URL such as https://hooks.slack.com/services/... "
            "(the value is not shown: it holds the receiver's token)"
        )
    return raw


def process_environment(dotenv: bool = True) -> dict[str, str]:
    """This process's environment, with `.env` in the working directory filling unset variables."""
    merged = dict(os.environ)
    if dotenv and Path(".env").is_file():
        for key, value in dotenv_values(".env").items():
            if value is not None:
                merged.setdefault(key, value)
    return merged


def load_settings(env: Mapping[str, str] | None = None, dotenv: bool = True) -> Settings:
    """Build and validate settings from `env`; without one, from this process's environment, where
    `.env` in the working directory fills unset variables."""
    if env is None:
        env = process_environment(dotenv)
    auth, user, password = _webhook_auth(env)
    site, api_base, api_key = _chargebee(env)
    replica_ack, replica_ack_timeout = _replica_ack(env)
    other_sites, home_configured = _sites(env, site, api_base, auth)
    settings = Settings(
        redis_url=_redis_url(env),
        chargebee_site=site,
        chargebee_api_key=api_key,
        chargebee_api_base=api_base,
        webhook_auth=auth,
        webhook_user=user,
        webhook_password=password,
        rules_path=Path(_text(env, "REACTOR_RULES", "rules.yaml")),
        port=_int(env, "PORT", 8000, minimum=1),
        var_dir=Path(_text(env, "REACTOR_VAR_DIR", "var")),
        queue_name=_text(env, "REACTOR_QUEUE", "reactor"),
        max_body_bytes=_int(env, "REACTOR_MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
        dedupe_ttl=_int(env, "REACTOR_DEDUPE_TTL", 4 * 24 * 3600, minimum=3 * 24 * 3600 + 7 * 3600),
        event_ttl=_int(env, "REACTOR_EVENT_TTL", 30 * 24 * 3600, minimum=4 * 24 * 3600),
        http_timeout=_float(env, "REACTOR_HTTP_TIMEOUT", 20.0),
        retry_intervals=_intervals(env, "REACTOR_RETRY_INTERVALS"),
        job_timeout=_int(env, "REACTOR_JOB_TIMEOUT", 180, minimum=5),
        admin_user=_text(env, "REACTOR_ADMIN_USER"),
        admin_password=env.get("REACTOR_ADMIN_PASSWORD", ""),
        secret_key=env.get("REACTOR_SECRET_KEY", ""),
        admin_insecure_cookie=_flag(env, "REACTOR_ADMIN_INSECURE_COOKIE"),
        lock_ttl=_int(env, "REACTOR_LOCK_TTL", 0, minimum=0),
        chargebee_rate_limit=_int(env, "REACTOR_CHARGEBEE_RATE_LIMIT", 150, minimum=1),
        rate_limit_window=_int(env, "REACTOR_RATE_LIMIT_WINDOW", 60, minimum=1),
        rate_limit_max_wait=_float(env, "REACTOR_RATE_LIMIT_MAX_WAIT", 10.0),
        abandoned_after=_int(env, "REACTOR_ABANDONED_AFTER", 60, minimum=3),
        maintenance_interval=_int(env, "REACTOR_MAINTENANCE_INTERVAL", 30, minimum=1),
        worker_class=_worker_class(env),
        verify_events=_flag(env, "REACTOR_VERIFY_EVENTS"),
        triage=_flag(env, "REACTOR_TRIAGE", default=True),
        sweep_cron=_cron(env, "REACTOR_SWEEP_CRON", Settings.sweep_cron),
        sweep_interval=_int(env, "REACTOR_SWEEP_INTERVAL", 0, minimum=0),
        webhook_allow=_networks(env, "REACTOR_WEBHOOK_ALLOW"),
        trusted_proxies=_int(env, "REACTOR_TRUSTED_PROXIES", 0, minimum=0),
        auth_failure_limit=_rate(env, "REACTOR_AUTH_FAILURE_LIMIT", "20/minute"),
        metrics_dir=_metrics_dir(env),
        redis_server_binary=_text(env, "REACTOR_REDIS_SERVER") or None,
        notify_url=_notify_url(env),
        notify_interval=_int(env, "REACTOR_NOTIFY_INTERVAL", 30, minimum=1),
        redis_wait=_deadline(env, "REACTOR_REDIS_WAIT"),
        audit_archive=_text(env, "REACTOR_AUDIT_ARCHIVE") or None,
        audit_segment_records=_int(env, "REACTOR_AUDIT_SEGMENT_RECORDS", Settings.audit_segment_records, minimum=1),
        audit_segment_seconds=_int(env, "REACTOR_AUDIT_SEGMENT_SECONDS", Settings.audit_segment_seconds, minimum=1),
        audit_keep=_int(env, "REACTOR_AUDIT_KEEP", Settings.audit_keep, minimum=0),
        audit_archive_interval=_int(env, "REACTOR_AUDIT_ARCHIVE_INTERVAL", Settings.audit_archive_interval, minimum=1),
        relief_delays=_relief_delays(env, "REACTOR_RELIEF_DELAYS"),
        replica_ack=replica_ack,
        replica_ack_timeout=replica_ack_timeout,
        approval_ttl=_int(env, "REACTOR_APPROVAL_TTL", 7 * 24 * 3600, minimum=60),
        approval_alert_after=_int(env, "REACTOR_APPROVAL_ALERT_AFTER", 24 * 3600, minimum=60),
        session_idle=_int(env, "REACTOR_SESSION_IDLE", 3600, minimum=60),
        dashboard_users=_flag(env, "REACTOR_DASHBOARD"),
        users_file=_text(env, "REACTOR_USERS_FILE") or None,
        other_sites=other_sites,
        home_configured=home_configured,
    )
    check_timeouts(settings)
    return settings


@dataclass(frozen=True)
class WebServerSettings:
    """How gunicorn serves the web process; reactor/gunicorn_conf.py gives the reason for each.
    Apart from `Settings` because gunicorn's master reads them before any app, and so any
    `Settings`, exists (and a web process's `Settings` do not depend on its server)."""

    host: str = "0.0.0.0"  # HOST
    port: int = 8000  # PORT
    workers: int = 2  # WEB_CONCURRENCY: gunicorn worker processes
    connections: int = 1000  # WEB_CONNECTIONS: connections each worker holds at once
    reuse_port: bool = True  # WEB_REUSE_PORT: a SO_REUSEPORT socket in each worker
    access_log: bool = False  # REACTOR_ACCESS_LOG: gunicorn's access log, a log line per request
    metrics_dir: str | None = None  # PROMETHEUS_MULTIPROC_DIR; unset: gunicorn_conf makes one
    var_dir: Path = Settings.var_dir  # REACTOR_VAR_DIR, as `Settings` reads it
    control_socket_on: bool = True  # WEB_CONTROL_SOCKET: gunicorn's control socket (`gunicornc`)

    @property
    def bind(self) -> str:
        """gunicorn's `bind`: HOST:PORT."""
        return f"{self.host}:{self.port}"

    @property
    def control_socket(self) -> Path | None:
        """Where gunicorn's control socket goes: in this directory's var/, named for the port, so
        that no two servers on a host share one (gunicorn's default, one fixed file per user, is
        taken over by the next server started and deleted by the first one that stops). None: off."""
        return self.var_dir / f"gunicorn-{self.port}.ctl" if self.control_socket_on else None


def web_server_settings(env: Mapping[str, str]) -> WebServerSettings:
    """The web server's settings from `env` (gunicorn_conf passes its process's environment)."""
    return WebServerSettings(
        host=_text(env, "HOST", WebServerSettings.host),
        port=_int(env, "PORT", WebServerSettings.port, minimum=1),
        workers=_int(env, "WEB_CONCURRENCY", WebServerSettings.workers, minimum=1),
        connections=_int(env, "WEB_CONNECTIONS", WebServerSettings.connections, minimum=1),
        reuse_port=_flag(env, "WEB_REUSE_PORT", default=WebServerSettings.reuse_port),
        access_log=_flag(env, "REACTOR_ACCESS_LOG"),
        metrics_dir=_metrics_dir(env),
        var_dir=Path(_text(env, "REACTOR_VAR_DIR", str(Settings.var_dir))),
        control_socket_on=_flag(env, "WEB_CONTROL_SOCKET", default=WebServerSettings.control_socket_on),
    )


LOG_LEVELS = ("CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "NOTSET")
"""What REACTOR_LOG_LEVEL may name, in any case: the standard library's level names (as 3.11's
logging.getLevelNamesMapping() lists them; Python 3.10 has no such call)."""


@dataclass(frozen=True)
class LogSettings:
    """REACTOR_LOG_LEVEL and REACTOR_LOG_FORMAT. Apart from `Settings` because logging starts
    first: a command whose settings are refused still logs, and gunicorn's master logs too."""

    level: str = "INFO"
    json_lines: bool | None = None  # REACTOR_LOG_FORMAT json / text; None: json unless stderr is a terminal


def log_settings(env: Mapping[str, str]) -> LogSettings:
    """The log settings from `env` (the process's environment, passed in at its edge)."""
    level = _text(env, "REACTOR_LOG_LEVEL", LogSettings.level).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"REACTOR_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level!r}")
    fmt = _text(env, "REACTOR_LOG_FORMAT").lower()
    if fmt not in ("", "json", "text"):
        raise ConfigError(f"REACTOR_LOG_FORMAT must be 'json' or 'text', got {fmt!r}")
    return LogSettings(level=level, json_lines=(fmt == "json") if fmt else None)


JOB_CHARGEBEE_CALLS = 4


def check_timeouts(settings: Settings) -> None:
    """Refuse timeouts that contradict each other: a job must be able to wait out a dead holder's
    invoice lock and then make its Chargebee calls (each after a rate-limit wait) before RQ kills it,
    and the lock must outlast one call, or two jobs could call Chargebee for one invoice at once.
    A write-off makes at most JOB_CHARGEBEE_CALLS calls: the invoice, the customer and the
    subscription a rule reads (reactor/jobs/facts.py), and write_off itself."""
    call = settings.http_timeout + settings.rate_limit_max_wait
    if settings.invoice_lock_ttl <= call:
        raise ConfigError(
            f"REACTOR_LOCK_TTL ({settings.invoice_lock_ttl}s) must exceed REACTOR_HTTP_TIMEOUT + "
            f"REACTOR_RATE_LIMIT_MAX_WAIT ({call:g}s): the lock must outlive one Chargebee call"
        )
    needed = settings.invoice_lock_ttl + JOB_CHARGEBEE_CALLS * call
    if settings.job_timeout < needed:
        raise ConfigError(
            f"REACTOR_JOB_TIMEOUT ({settings.job_timeout}s) must be at least the invoice lock TTL plus "
            f"{JOB_CHARGEBEE_CALLS} Chargebee calls with their rate-limit waits ({needed:g}s)"
        )


def require_webhook_credentials(settings: Settings) -> None:
    """The web process refuses to start open to the internet by accident."""
    if (
        settings.webhook_auth == "basic"
        and settings.home_site is not None
        and not (settings.webhook_user and settings.webhook_password)
    ):
        raise ConfigError(
            "REACTOR_WEBHOOK_USER and REACTOR_WEBHOOK_PASSWORD are required "
            "(the Basic-auth credentials set on the Chargebee webhook); "
            "set REACTOR_WEBHOOK_AUTH=none to accept unauthenticated deliveries"
        )
    for site in settings.other_sites:
        if settings.webhook_auth == "basic" and not (site.webhook_user and site.webhook_password):
            raise ConfigError(
                f"site {site.name!r} has no webhook credentials: each site's webhooks have their own Basic auth"
            )
