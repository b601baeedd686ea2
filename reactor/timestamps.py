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
    """`value` as people read it (a naive time is taken as UTC); "" for none, and text that is not an
    ISO time as it is, so that nothing recorded is hidden."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc).strftime(SHOWN_FORMAT)
    except (OverflowError, ValueError):  # year 1 at -14:00 is before year 1 in UTC
        return moment.isoformat()
