"""REDIS_URL parsing (reactor/redis_connect.py): plain URLs go to redis-py as they are, Sentinel
URLs become a redis-py Sentinel client. No Redis is reached: connecting is lazy."""

from __future__ import annotations

import socket

import pytest
import redis
from redis.sentinel import SentinelConnectionPool, SentinelManagedSSLConnection

from reactor.config import ConfigError, load_settings
from reactor.redis_connect import (
    CONNECT_TIMEOUT,
    RedisURLError,
    SentinelSSLConnection,
    SentinelURL,
    TLSConnection,
    connect,
    describe,
    parse_sentinel_url,
)


def test_a_full_sentinel_url_is_read_part_by_part():
    parsed = parse_sentinel_url(
        "redis+sentinel://app:s%40cret@s1.internal:26380,s2.internal,[::1]:26381/billing/2?sentinel_password=sp"
    )

    assert parsed == SentinelURL(
        sentinels=(("s1.internal", 26380), ("s2.internal", 26379), ("::1", 26381)),
        service_name="billing",
        db=2,
        username="app",
        password="s@cret",
        sentinel_password="sp",
    )


def test_a_password_without_a_user_and_no_db():
    parsed = parse_sentinel_url("redis+sentinel://:pw@127.0.0.1:26379/mymaster")

    assert (parsed.username, parsed.password, parsed.db, parsed.tls) == (None, "pw", 0, {})
    assert parsed.sentinel_kwargs() == {"username": None, "password": None}


def test_rediss_sentinel_turns_tls_on_for_redis_and_the_sentinels():
    parsed = parse_sentinel_url(
        "rediss+sentinel://h:26379/mymaster?ssl_cert_reqs=none&ssl_ca_certs=/etc/ca.pem&ssl_check_hostname=false"
    )

    tls = {"ssl": True, "ssl_cert_reqs": "none", "ssl_ca_certs": "/etc/ca.pem", "ssl_check_hostname": False}
    assert parsed.tls == tls
    assert parsed.redis_kwargs() == {"db": 0, "username": None, "password": None, **tls}
    assert parsed.sentinel_kwargs() == {"username": None, "password": None, **tls}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://h:26379", "ends with /service_name"),
        ("redis+sentinel://h:26379/a/b/c", "ends with /service_name"),
        ("redis+sentinel://h:26379/mymaster/x", "must be a number"),
        ("redis+sentinel://h:26379,,h2/mymaster", "one is empty"),
        ("redis+sentinel://h:port/mymaster", "port must be a number"),
        ("redis+sentinel://h:70000/mymaster", "port must be a number"),
        ("redis+sentinel://h/mymaster?ssl_cert_reqs=none", "use rediss+sentinel://"),
        ("rediss+sentinel://h/mymaster?ssl_cert_reqs=maybe", "required, optional or none"),
        ("redis+sentinel://h/mymaster?db=1", "unknown Sentinel URL option(s) db"),
    ],
)
def test_a_malformed_sentinel_url_is_refused_saying_why(url, says):
    with pytest.raises(RedisURLError) as raised:
        parse_sentinel_url(url)
    assert says in str(raised.value)


def test_settings_refuse_a_bad_redis_url_without_showing_its_password():
    with pytest.raises(ConfigError) as raised:
        load_settings({"REDIS_URL": "redis+sentinel://:hunter2@h:26379"}, dotenv=False)
    assert str(raised.value).startswith("REDIS_URL is malformed (")
    assert "hunter2" not in str(raised.value)
    with pytest.raises(ConfigError, match=r"REDIS_URL is malformed \(Redis URL must specify one of the following"):
        load_settings({"REDIS_URL": "http://:hunter2@h:6379"}, dotenv=False)


def test_settings_keep_a_good_sentinel_url():
    url = "redis+sentinel://:pw@s1:26379,s2:26379/mymaster/1"
    assert load_settings({"REDIS_URL": url}, dotenv=False).redis_url == url


def test_connect_builds_a_sentinel_client_with_the_timeouts_on_both_sides():
    connection = connect("rediss+sentinel://:pw@s1:26380,s2/mymaster/3", socket_timeout=1.5, socket_connect_timeout=2)
    pool = connection.connection_pool

    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "mymaster"
    assert issubclass(pool.connection_class, SentinelManagedSSLConnection)
    assert pool.make_connection().read_response.__kwdefaults__["disconnect_on_error"] is True  # made, not reached
    assert (pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == (3, "pw")
    assert pool.connection_kwargs["socket_timeout"] == 1.5
    sentinel = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
    assert (sentinel["host"], sentinel["port"], sentinel["socket_timeout"], sentinel["password"]) == (
        "s1",
        26380,
        1.5,
        None,
    )
    assert describe(connection) == "sentinel service mymaster at s1:26380,s2:26379/3"


def test_connect_hands_a_plain_url_to_redis_py():
    connection = connect("rediss://:hunter2@cache.example:25061/4?ssl_cert_reqs=none", socket_timeout=1)

    assert isinstance(connection, redis.Redis)
    kwargs = connection.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["ssl_cert_reqs"]) == (
        "cache.example",
        25061,
        4,
        "none",
    )
    assert describe(connection) == "cache.example:25061/4"


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://app:hunter2/mymaster",  # the @host part left out
        "redis+sentinel://app:hunt/er2@h:26379/mymaster",  # a / in the password, unencoded
        "redis+sentinel://app:x/hun/ter2@h:26379/mymaster",
        "redis+sentinel://app:hunter2@[::1/mymaster",  # an unclosed IPv6 bracket
        "redis+sentinel://h:²/mymaster",  # digits that str.isdigit() takes and int() refuses
        "redis+sentinel://h/mymaster/²",
        "redis://app:hunter2/0",
        "rediss://app:hunter2#x@h:6380/0",  # a # in the password, unencoded
    ],
)
def test_a_malformed_url_is_refused_in_one_line_that_shows_no_part_of_its_password(url):
    with pytest.raises(ConfigError) as raised:
        load_settings({"REDIS_URL": url}, dotenv=False)
    assert str(raised.value).startswith("REDIS_URL is malformed (")
    assert not any(part in str(raised.value) for part in ("hunter2", "hunt", "er2", "ter2", "hunter"))


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any host name looked up fails the test."""

    def looked_up(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a host was looked up: {args[0]!r}")

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
        monkeypatch.setattr(socket, name, looked_up)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@evilhost/tail@real-redis.internal:6379/0",  # a / after an @ in the password
        "rediss://app:hun@ter2/x@real-redis.internal:6380/0",
        "redis://:1234/hunter2@real-redis.internal:6379/0",  # a host-less URL, the password's head a "port"
        "redis://:1234?hunter2@real-redis.internal:6379/0",  # a ? in the password
        "redis://:1234#hunter2@real-redis.internal:6379/0",  # a # in the password
        "redis+sentinel://:hunter2@evilhost/tail@real-redis.internal:26379/mymaster",
    ],
)
def test_a_password_with_an_unencoded_at_or_slash_is_refused_unlooked_up_and_unshown(url, no_dns):
    with pytest.raises(ConfigError) as raised:
        load_settings({"REDIS_URL": url}, dotenv=False)

    said = str(raised.value)
    assert said.startswith("REDIS_URL is malformed (an @ after the host")
    assert "percent-encode" in said and "%40" in said and "%2F" in said
    assert not any(part in said for part in ("hunter2", "hun", "ter2", "evilhost", "tail", "real-redis", "1234"))


def test_a_database_that_is_not_a_number_is_refused(no_dns):
    with pytest.raises(ConfigError, match=r"REDIS_URL is malformed \(the database after host:port must be a number"):
        load_settings({"REDIS_URL": "redis://:hunter2@real-redis.internal:6379/zero"}, dotenv=False)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hun%40ter%2F2@real-redis.internal:6379/0",  # encoded, as it should be
        "redis://:hun@ter2@real-redis.internal:6379/0",  # an unencoded @ alone still ends at the last @
        "rediss://real-redis.internal:6380/",
        "redis://real-redis.internal",
        "unix:///var/run/redis@6379.sock?db=1",  # a socket path may hold an @
    ],
)
def test_good_urls_are_kept(url, no_dns):
    assert load_settings({"REDIS_URL": url}, dotenv=False).redis_url == url


def test_every_tls_connection_shakes_hands_within_the_connect_timeout():
    plain = connect("rediss://h:6380/0").connection_pool
    assert plain.connection_class is TLSConnection
    assert plain.connection_kwargs["socket_connect_timeout"] == CONNECT_TIMEOUT

    behind_sentinel = connect("rediss+sentinel://s1,s2/mymaster", socket_connect_timeout=3).connection_pool
    assert issubclass(behind_sentinel.connection_class, SentinelSSLConnection)
    assert behind_sentinel.connection_kwargs["socket_connect_timeout"] == 3
    for sentinel in behind_sentinel.sentinel_manager.sentinels:
        assert sentinel.connection_pool.connection_class is TLSConnection
        assert sentinel.connection_pool.connection_kwargs["socket_connect_timeout"] == 3

    assert connect("redis://h:6379/0").connection_pool.connection_kwargs["socket_connect_timeout"] == CONNECT_TIMEOUT
