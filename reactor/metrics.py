"""Prometheus metrics. Under gunicorn, set PROMETHEUS_MULTIPROC_DIR (the Procfile does) so that every
worker process writes its samples there and /metrics adds them up."""

from __future__ import annotations

import os

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

EVENTS = Counter(
    "reactor_events_received_total",
    "Webhook deliveries by event type and outcome (queued, duplicate, ignored, rejected, unavailable)",
    ["event_type", "outcome"],
)
WEBHOOK_LATENCY = Histogram(
    "reactor_webhook_seconds",
    "Time to answer a webhook delivery",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def render() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(DEFAULT_REGISTRY)
