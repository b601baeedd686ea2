"""The baseline for the ingest benchmark: a Flask endpoint that only parses the JSON body and answers 200.

Served by the same gunicorn settings as the reactor (`gunicorn -c python:reactor.gunicorn_conf
bench.bare_app:app`), so the difference between the two is the reactor's own work: Basic auth,
envelope validation, the Redis transaction (dedupe, store, enqueue), metrics and logging.
"""

from flask import Flask, jsonify, request

app = Flask("bare")


@app.post("/webhooks/chargebee")
def receive():  # type: ignore[no-untyped-def]
    event = request.get_json(force=True)
    return jsonify({"status": "ok", "event_id": event.get("id")})
