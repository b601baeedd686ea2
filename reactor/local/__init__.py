"""Running locally: `reactor run` (Redis, the sandbox, web, workers and cron in one command, in
`supervisor.py`) and the embedded `redis-server` it starts when REDIS_URL is not set
(`redis_server.py`; the tests start theirs from here too)."""
