"""reactor/timestamps.py: how every time is shown to people."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from reactor.timestamps import SHOWN_WIDTH, shown_time

UTC = timezone.utc


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 25, 16, 40, 12, 514000, tzinfo=UTC),
        datetime(2026, 11, 25, 16, 40, 12),  # naive: UTC
        datetime(2026, 11, 25, 17, 40, 12, tzinfo=timezone(timedelta(hours=1))),
        "2026-11-25T16:40:12.514+00:00",  # an audit record's `at`
        "2026-11-25T16:40:12+00:00",  # a held write-off's `held_at`
        "2026-11-25T16:40:12.514123Z",
        " 2026-11-25T11:40:12-05:00",
    ],
)
def test_every_form_of_one_moment_is_shown_the_same(value) -> None:
    assert shown_time(value) == "2026-11-25 16:40:12Z"
    assert len(shown_time(value)) == SHOWN_WIDTH


@pytest.mark.parametrize(("value", "shown"), [(None, ""), ("", ""), ("soon", "soon"), ("2026-13-40", "2026-13-40")])
def test_nothing_is_empty_and_what_is_not_a_time_is_shown_as_it_is(value, shown: str) -> None:
    assert shown_time(value) == shown


def test_shown_times_sort_as_text_as_the_moments_do() -> None:
    moments = [
        datetime(2026, 1, 2, tzinfo=UTC) + timedelta(hours=h, seconds=s) for h in (0, 9, 10, 23) for s in (0, 59)
    ]
    assert sorted(map(shown_time, moments)) == [shown_time(m) for m in sorted(moments)]
