"""Every connection to Redis is made here, from REDIS_URL: the web app, `reactor worker` and its
RQ scheduler, `reactor cron`, the CLI and the `limits` rate limiters (which run on the client's own
connection pool) all follow the same URL, so a Sentinel URL moves all of them to a new primary.
REDIS_URL is a URL redis-py's `Redis.from_url` reads, or a Sentinel URL (`SentinelURL`).
"""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection, SentinelManagedSSLConnection

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_SENTINEL_PORT = 26379
TLS_OPTIONS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_check_hostname")
OPTIONS = ("sentinel_username", "sentinel_password", *TLS_OPTIONS)
DIGITS = re.compile(r"[0-9]{1,10}")  # ASCII only: str.isdigit() takes "²", which int() refuses
CONNECT_TIMEOUT = 5.0
"""Seconds a new connection may take, TCP connect and TLS handshake together, when the caller of
`connect` gives no `socket_connect_timeout`."""
ENCODE_PASSWORD = "percent-encode @ / ? # in the password: %40 %2F %3F %23"


class RedisURLError(ValueError):
    """REDIS_URL is malformed; the message says what is wrong without repeating the URL (it may
    hold a password)."""


# A Sentinel URL is followed by redis-py's own Sentinel client (`redis.sentinel.Sentinel.master_for`:
# each new connection asks the sentinels where the primary is, and a connection to a primary that was
# demoted is dropped). Its shape is the `limits` package's `redis+sentinel://host:port,host:port/
# service_name`, with the database, TLS and the sentinels' own password added:
#
#     redis+sentinel://[[username]:password@]host[:port][,host[:port]...]/service_name[/db][?options]
#     rediss+sentinel://...    the same over TLS, to the sentinels and to Redis
#
# - host:port: the sentinels, comma-separated (port 26379 when left out; IPv6 in brackets);
# - service_name: the name the sentinels monitor (`sentinel monitor <service_name> ...`);
# - db: the database number, 0 when left out;
# - username/password: those of Redis itself (`requirepass` or an ACL user), as in redis://;
# - options: `sentinel_password` (and `sentinel_username`) when the sentinels have a password of
#   their own (they are asked without one otherwise); with TLS, `ssl_cert_reqs` (required, optional,
#   none), `ssl_ca_certs` (a CA file, e.g. a managed Redis's self-signed one) and
#   `ssl_check_hostname`, as in rediss://.
@dataclass(frozen=True)
class SentinelURL:
    """A parsed `redis+sentinel://` URL (the grammar is in the comment above)."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls: dict[str, Any] = field(default_factory=dict)
    """redis-py's ssl keyword arguments (`ssl=True` and the ssl_* options); empty without TLS."""

    def redis_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the connections to Redis itself."""
        return {"db": self.db, "username": self.username, "password": self.password, **self.tls}

    def sentinel_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the connections to the sentinels (timeouts are added by `connect`)."""
        return {"username": self.sentinel_username, "password": self.sentinel_password, **self.tls}


class _ClosedWhenCutOff:
    """A connection closed when reading an answer is cut off, as redis-py's plain connections are.
    Its Sentinel connection keeps itself open instead, with the answer unread, and the next command
    on it takes that answer for its own: RQ's stop request, an exception raised by its signal handler
    in the middle of the worker's BLPOP, left the worker's last writes reading the BLPOP's answer."""

    def read_response(
        self, disable_decoding: bool = False, *, disconnect_on_error: bool = True, push_request: bool = False
    ) -> Any:
        return super().read_response(  # type: ignore[misc]
            disable_decoding=disable_decoding, disconnect_on_error=disconnect_on_error, push_request=push_request
        )


class _HandshakeWithinConnectTimeout:
    """A TLS connection whose handshake must end within `socket_connect_timeout`. redis-py's own
    shakes hands under `socket_timeout`, which the CLI and the worker leave unset (the worker's
    BLPOP waits longer than any read timeout would allow), so that a `rediss://` URL pointing at a
    Redis without TLS, which reads the ClientHello as the start of a command line and waits for the
    rest, hung the command for ever."""

    socket_connect_timeout: float | None
    socket_timeout: float | None

    def _wrap_socket_with_ssl(self, sock: socket.socket) -> ssl.SSLSocket:
        sock.settimeout(self.socket_connect_timeout)
        try:
            wrapped = super()._wrap_socket_with_ssl(sock)  # type: ignore[misc]
        except TimeoutError:
            said = f"no TLS handshake within {self.socket_connect_timeout:g} s"
            raise redis.TimeoutError(f"{said} (a Redis without TLS behind a rediss:// URL?)") from None
        wrapped.settimeout(self.socket_timeout)
        return wrapped


class TLSConnection(_HandshakeWithinConnectTimeout, redis.SSLConnection):
    """redis-py's TLS connection, the handshake bounded by `socket_connect_timeout`."""


class SentinelConnection(_ClosedWhenCutOff, SentinelManagedConnection):
    """redis-py's connection to the primary the sentinels name, closed when a read is cut off."""


class SentinelSSLConnection(_HandshakeWithinConnectTimeout, _ClosedWhenCutOff, SentinelManagedSSLConnection):
    """The same over TLS, the handshake bounded by `socket_connect_timeout`."""


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelURL:
    """Parse a `redis+sentinel://` or `rediss+sentinel://` URL (the format is in the module's doc)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed [ of an IPv6 address
        raise RedisURLError(str(exc)) from None
    if parts.scheme.lower() not in SENTINEL_SCHEMES:
        raise RedisURLError(
            f"a Sentinel URL starts with redis+sentinel:// or rediss+sentinel://, not {parts.scheme}://"
        )
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    path = [segment for segment in parts.path.split("/") if segment]
    if not path or len(path) > 2:
        raise RedisURLError("a Sentinel URL ends with /service_name or /service_name/db, e.g. .../mymaster/0")
    if len(path) == 2 and not DIGITS.fullmatch(path[1]):
        raise RedisURLError("the database after the service name must be a number (is a / in the password unencoded?)")
    options = dict(parse_qsl(parts.query))
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise RedisURLError(f"unknown Sentinel URL option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    tls = _tls(parts.scheme.lower() == "rediss+sentinel", options)
    return SentinelURL(
        sentinels=tuple(_sentinel(host) for host in hosts.split(",")),
        service_name=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_username=options.get("sentinel_username") or None,
        sentinel_password=options.get("sentinel_password") or None,
        tls=tls,
    )


def _sentinel(text: str) -> tuple[str, int]:
    """`host`, `host:port` or `[v6]:port`."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.partition(":")
    if not host:
        raise RedisURLError("a Sentinel URL lists its sentinels as host:port,host:port (one is empty)")
    if port and not (DIGITS.fullmatch(port) and 0 < int(port) < 65536):
        # Not repeated: a password holding an unencoded / or # ends the URL's host part early, so
        # that what looks like a host and a port is the user name and (part of) the password.
        raise RedisURLError("a sentinel's port must be a number up to 65535 (a / # or ? unencoded in a password?)")
    return host, int(port) if port else DEFAULT_SENTINEL_PORT


def _tls(enabled: bool, options: dict[str, str]) -> dict[str, Any]:
    given = [name for name in TLS_OPTIONS if name in options]
    if not enabled:
        if given:
            raise RedisURLError(f"{given[0]} is a TLS option: use rediss+sentinel:// for TLS")
        return {}
    tls: dict[str, Any] = {"ssl": True}
    if "ssl_cert_reqs" in options:
        if options["ssl_cert_reqs"] not in ("required", "optional", "none"):
            raise RedisURLError("ssl_cert_reqs must be required, optional or none")
        tls["ssl_cert_reqs"] = options["ssl_cert_reqs"]
    if "ssl_ca_certs" in options:
        tls["ssl_ca_certs"] = options["ssl_ca_certs"]
    if "ssl_check_hostname" in options:
        tls["ssl_check_hostname"] = options["ssl_check_hostname"].lower() not in ("0", "false", "no", "off")
    return tls


def check_url(url: str) -> None:
    """Raise RedisURLError if `url` cannot be connected to (checked at start, not on first use,
    and without looking any host up)."""
    _check_after_host(url)
    if is_sentinel_url(url):
        parse_sentinel_url(url)
        return
    try:
        redis.connection.parse_url(url)
    except ValueError as exc:
        # Without what redis-py quotes after " as ": the port it could not read may be (part of)
        # a password whose / or # was not percent-encoded.
        said = str(exc).split(" (", 1)[0].split(" as ", 1)[0]
        raise RedisURLError(f"{said}; {ENCODE_PASSWORD}" if said.startswith("Port") else said) from None
    path = urlsplit(url).path
    if url.startswith(("redis://", "rediss://")) and path.strip("/") and not DIGITS.fullmatch(path.strip("/")):
        # redis-py would read database 0 instead.
        raise RedisURLError("the database after host:port must be a number, e.g. /0")


def _check_after_host(url: str) -> None:
    """Refuse an @ after the host: a password holding an unencoded / ? or # ends the host part
    there, so that the rest of the password became the host (and was looked up in DNS) and the
    real host fell into the path, which redis-py ignores when it is not a number."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed [ of an IPv6 address
        raise RedisURLError(str(exc)) from None
    if parts.scheme.lower() == "unix":
        return  # the path is the socket's, which may hold an @
    if "@" in parts.path + parts.query + parts.fragment:
        raise RedisURLError(f"an @ after the host: the password holds an unencoded / ? or #; {ENCODE_PASSWORD}")


def connect(url: str, **options: Any) -> redis.Redis:
    """A client for `url`; `options` (timeouts, retry, health_check_interval) are redis-py's
    `Redis` keyword arguments. With a Sentinel URL the sentinels are asked with the same socket
    timeouts. Nothing is sent before the first command. A new connection, its TLS handshake
    included, is made within `socket_connect_timeout` (CONNECT_TIMEOUT when not given)."""
    options.setdefault("socket_connect_timeout", CONNECT_TIMEOUT)
    if not is_sentinel_url(url):
        if urlsplit(url).scheme == "rediss":
            options["connection_class"] = TLSConnection
        return redis.Redis.from_url(url, **options)
    parsed = parse_sentinel_url(url)
    timeouts = {name: value for name, value in options.items() if name.startswith("socket_")}
    # One try per sentinel: the next sentinel is the retry. redis-py's default retried each one three
    # times with pauses, about 6 s a sentinel, so that one look for the primary with none answering
    # took 18 s behind three of them.
    once = Retry(NoBackoff(), 0)
    sentinel = Sentinel(parsed.sentinels, sentinel_kwargs={**parsed.sentinel_kwargs(), **timeouts, "retry": once})
    if parsed.tls:
        # redis-py's Redis picks its own SSLConnection for each sentinel; ours bounds the handshake.
        for client in sentinel.sentinels:
            client.connection_pool.connection_class = TLSConnection
    redis_kwargs = parsed.redis_kwargs()
    # Given a connection class, redis-py's pool no longer takes `ssl` out of the keyword arguments.
    connection_class = SentinelSSLConnection if redis_kwargs.pop("ssl", False) else SentinelConnection
    return sentinel.master_for(
        parsed.service_name, redis_class=redis.Redis, connection_class=connection_class, **redis_kwargs, **options
    )


def describe(connection: redis.Redis) -> str:
    """Where `connection` points, without credentials: `host:port/db`, `unix:path/db`, or
    `sentinel service mymaster at host:port,host:port/db`."""
    pool = connection.connection_pool
    kwargs = pool.connection_kwargs
    if isinstance(pool, SentinelConnectionPool):
        nodes = [node.connection_pool.connection_kwargs for node in pool.sentinel_manager.sentinels]
        sentinels = ",".join(f"{node['host']}:{node['port']}" for node in nodes)
        return f"sentinel service {pool.service_name} at {sentinels}/{kwargs.get('db', 0)}"
    where = (
        f"unix:{kwargs['path']}"
        if kwargs.get("path")
        else f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    )
    return f"{where}/{kwargs.get('db', 0)}"
