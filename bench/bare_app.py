"""Baselines for the ingest benchmark, served by the same gunicorn settings as the reactor
(`gunicorn -c python:reactor.gunicorn_conf bare_app:app`):

- `app`: a Flask endpoint that only parses the JSON body and answers 200. The difference between it
  and the reactor is the reactor's own work: Basic auth, envelope validation, the Redis round trip
  (dedupe, store, enqueue), metrics and logging.
- `stored_app`: the same plus one Redis SET of the body before answering: the least any design that
  keeps an event in Redis before acknowledging it can do, i.e. the ceiling for the reactor here.
"""

import os

import redis
from flask import Flask, jsonify, request

app = Flask("bare")


@app.post("/webhooks/chargebee")
def receive():  # type: ignore[no-untyped-def]
    event = request.get_json(force=True)
    return jsonify({"status": "ok", "event_id": event.get("id")})


stored_app = Flask("bare_stored")
_redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


@stored_app.post("/webhooks/chargebee")
def receive_and_store():  # type: ignore[no-untyped-def]
    body = request.get_data()
    event = request.get_json(force=True)
    _redis.set(f"bare:event:{event.get('id')}", body)
    return jsonify({"status": "ok", "event_id": event.get("id")})
