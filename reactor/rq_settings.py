"""RQ's own command line (`rq info`, `rq requeue`, ...) on the reactor's REDIS_URL, Sentinel URLs too:

    rq info -c reactor.rq_settings

`rq info -u` reads only what redis-py's `Redis.from_url` reads; a `redis+sentinel://` URL
(reactor/redis_connect.py) becomes RQ's SENTINEL setting here, which RQ's command line follows to
the current primary. Any other URL is handed on as REDIS_URL. Read from the environment, as every
`reactor` command does; no `rq` command is pointed at a default Redis when REDIS_URL is unset.
"""

from __future__ import annotations

import os
import sys

from .redis_connect import RedisURLError, check_url, is_sentinel_url, parse_sentinel_url

_url = os.environ.get("REDIS_URL", "").strip()
if not _url:
    sys.exit("reactor.rq_settings: REDIS_URL is not set (the embedded Redis of `reactor run` is in var/redis.url)")
try:
    check_url(_url)
except RedisURLError as _exc:
    sys.exit(f"reactor.rq_settings: REDIS_URL is malformed ({_exc})")

if is_sentinel_url(_url):
    _parsed = parse_sentinel_url(_url)
    _tls = dict(_parsed.tls)
    SENTINEL = {
        "INSTANCES": list(_parsed.sentinels),
        "MASTER_NAME": _parsed.service_name,
        "DB": _parsed.db,
        "USERNAME": _parsed.username,
        "PASSWORD": _parsed.password,
        "SSL": bool(_tls.pop("ssl", False)),
        "CONNECTION_KWARGS": _tls,
        "SENTINEL_KWARGS": _parsed.sentinel_kwargs(),
    }
else:
    REDIS_URL = _url
