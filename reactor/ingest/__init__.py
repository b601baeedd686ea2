"""Ingest: what happens between Chargebee's POST and a queued job, in milliseconds.

    webhook.py   the `/webhooks/chargebee` endpoint: auth, screening, media type, size, answer
    guard.py     the client address behind trusted proxies, the CIDR allow-list, the failed-auth limit
    envelope.py  the envelope parser (`parse_event`, `Event`): what Chargebee could have sent
    events.py    `EventStore` (dedupe + store + enqueue) and the evaluation job's id
    enqueue.py   the Redis writes RQ makes to enqueue a job, captured once per process
    inbox.py     accepted events waiting for a triage job, and its claims
    replication.py  whether an accept waits for a replica (REACTOR_REPLICA_ACK)
    packing.py   stored bodies and trace entries, packed with a dictionary
    receipts.py  an event's receipt: in its invoice's trace, or its own when it was ignored or refused
    trace_list.py  an invoice's trace list: its layout and every Lua script part that writes it

Nothing here imports the jobs: the evaluation is enqueued by its path (reactor/keys.py).
"""
