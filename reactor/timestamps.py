"""How a moment is shown to a person: one format for every table of the `reactor` commands, the text
of `reactor trace` and the dashboard's pages (its Jinja filter `utc`, reactor/dashboard/views.py).

`2026-11-25 16:40:12Z`: UTC, to the second, ISO 8601's order with a space for the `T`, so that
columns line up and sort as text. What is stored and exported (the audit's csv and jsonl, `--format
json`, the held write-offs' `held_at`) keeps the full ISO 8601 time it was written with.
"""

from __future__ import annotations

from datetime import datetime, timezone

SHOWN_FORMAT = "%Y-%m-%d %H:%M:%SZ"
SHOWN_WIDTH = len("2026-11-25 16:40:12Z")


def shown_time(value: datetime | str | None) -> str:
    """`value` (a datetime or an ISO 8601 text; a naive one is taken as UTC) as people read it; "" for
    none (Jinja's undefined too), and anything that is not a time as it is, so nothing recorded is
    hidden."""
    if not value:
        return ""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value)
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc).strftime(SHOWN_FORMAT)
    except (OverflowError, ValueError):  # year 1 at -14:00 is before year 1 in UTC
        return moment.isoformat()
