"""Who may reach the webhook: the source-network allow-list (403), the failed-auth flood limit (429),
and the client address both are keyed on; both run before the Basic-auth credentials are looked at.
docs/security.md says what each stops and what it does not.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from dataclasses import dataclass

import redis
from flask import Flask
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from werkzeug.middleware.proxy_fix import ProxyFix

from ..keys import Keys

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
UNPARSEABLE = "unparseable"  # one shared bucket for whatever is not an IP address


# The client address is the TCP peer, or with `REACTOR_TRUSTED_PROXIES=n` the address the n-th proxy
# from us saw (werkzeug's ProxyFix reading X-Forwarded-For from the right): the entries a client can
# write itself are never believed.
def trust_proxies(app: Flask, count: int) -> None:
    """Make `request.remote_addr` the client's address as seen by the outermost of `count` proxies.
    With 0 (the default) X-Forwarded-For is ignored: any client could write it."""
    if count > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=0, x_host=0, x_port=0, x_prefix=0)  # type: ignore[method-assign]


def parse_address(value: str | None) -> IPAddress | None:
    """An IP address, IPv4-mapped IPv6 (::ffff:a.b.c.d) read as the IPv4 it carries; None if not one."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(cidrs: tuple[str, ...] | list[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def is_allowed(address: IPAddress | None, networks: tuple[IPNetwork, ...]) -> bool:
    """No networks: everyone. Otherwise only a parseable address inside one of them."""
    if not networks:
        return True
    if address is None:
        return False
    return any(address.version == net.version and address in net for net in networks)


def _bucket_of(address: IPAddress | None) -> str:
    return str(address) if address is not None else UNPARSEABLE


@dataclass(frozen=True)
class Refusal:
    """Why the webhook turns a request away before looking at its credentials."""

    status: int
    error: str
    message: str
    retry_after: int | None = None


# The webhook URL is public; only the Basic-auth credentials separate Chargebee from anyone else. The
# guard runs before they are looked at, in this order:
# 1. allow-list (403): with `REACTOR_WEBHOOK_ALLOW` set, an address outside every listed network is
#    refused outright; no credentials are checked, nothing is counted.
# 2. flood limit (429 + Retry-After): an address with more than `REACTOR_AUTH_FAILURE_LIMIT` failed
#    logins in the moving window is refused before its credentials are checked, so guessing from it
#    stops. Only failures are counted: good deliveries never use up the budget, and an attacker's
#    failures are counted against the attacker's address, not Chargebee's. The counter lives in Redis
#    (the `limits` package, moving window) so every web process shares it; when Redis is unreachable
#    the limit is skipped (fail open) and the credentials are still checked.
class WebhookGuard:
    """The allow-list and the failed-auth limiter of one web app (shared state in Redis)."""

    def __init__(
        self,
        connection: redis.Redis,
        allow: tuple[str, ...] = (),
        failure_limit: str = "20/minute",
        key_prefix: str = "reactor",
    ):
        self.networks = parse_networks(allow)
        self.limit: RateLimitItem = parse(failure_limit)
        storage = RedisStorage(
            "redis://",
            connection_pool=connection.connection_pool,
            key_prefix=Keys(key_prefix).namespace("webhook"),
            wrap_exceptions=True,
        )
        self.limiter = MovingWindowRateLimiter(storage)
        # Redis is asked only on a failed login. A process remembers the addresses it found over the
        # limit until their window frees a slot, and refuses them from memory (screen), so a good
        # delivery costs no Redis round trip for the limiter. The price: a process that has not itself
        # seen a failed login from an address since it crossed the limit in another process lets that
        # address's next good login through; its next failed login there is refused and remembered.
        # Under a guessing flood every process sees failures within moments, so at most a few guesses
        # pass the limit.
        self._blocked: dict[str, float] = {}  # bucket -> unix time its window frees a slot

    @staticmethod
    def bucket(remote_addr: str | None) -> str:
        """The limiter's key for an address: its canonical text, or one shared bucket for garbage."""
        return _bucket_of(parse_address(remote_addr))

    def screen(self, remote_addr: str | None) -> Refusal | None:
        """Allow-list, then the addresses this process knows are over the limit; no Redis here.
        None lets the request on to the credentials check."""
        address = parse_address(remote_addr) if self.networks or self._blocked else None
        if not is_allowed(address, self.networks):
            return Refusal(403, "forbidden", "this address may not deliver webhooks here")
        if not self._blocked:  # the usual case, and then no address needs parsing
            return None
        bucket = _bucket_of(address)
        until = self._blocked.get(bucket)
        if until is None:
            return None
        if until <= time.time():
            self._blocked.pop(bucket, None)
            return None
        return self._too_many(until)

    def failed(self, remote_addr: str | None) -> Refusal | None:
        """A failed login: refused with 429 if the address was already over the limit (in Redis,
        shared by every process), else counted; crossing the limit is remembered and logged once."""
        bucket = self.bucket(remote_addr)
        try:
            if not self.limiter.test(self.limit, "auth-failures", bucket):
                return self._too_many(self._remember(bucket))
            self.limiter.hit(self.limit, "auth-failures", bucket)
            over = not self.limiter.test(self.limit, "auth-failures", bucket)
            if over:
                self._remember(bucket)
        except (StorageError, redis.RedisError) as exc:
            log.warning("webhook: failed-auth limiter unavailable (%s); not counting", exc.__class__.__name__)
            return None
        if over:
            log.warning("webhook: %s failed Basic auth over %s; answering 429 until it slows down", bucket, self.limit)
        return None

    def _remember(self, bucket: str) -> float:
        """Note until when `bucket` is over the limit: when its moving window frees a slot."""
        until = self.limiter.get_window_stats(self.limit, "auth-failures", bucket).reset_time
        if len(self._blocked) > 10_000:  # a flood from many addresses must not grow this without bound
            now = time.time()
            self._blocked = {b: t for b, t in self._blocked.items() if t > now}
        self._blocked[bucket] = until
        return until

    @staticmethod
    def _too_many(until: float) -> Refusal:
        retry_after = max(1, math.ceil(until - time.time()))
        return Refusal(
            429, "too_many_failures", "too many failed logins from this address; retry later", retry_after=retry_after
        )
