"""What the audit tally counts an undo against, and the days as they stand, without Redis
(tests/integration/test_metrics.py and test_undo_dashboard.py fold real records)."""

from __future__ import annotations

from datetime import date

from reactor.console.tally import DailyWriteOffs, undone_day


def test_an_undo_counts_against_the_day_of_the_write_off_it_reversed():
    record = {
        "at": "2026-01-16T00:00:01.000+00:00",
        "detail": "actor=ops@vm credit_note=CN-1 status=not_paid amount_due=1250 "
        "written_off_at=2026-01-15T23:59:59.500+00:00 note=x written_off_at=2020-01-01",
    }
    assert undone_day(record) == "2026-01-15"
    assert undone_day({**record, "detail": "actor=ops@vm credit_note=CN-1"}) == "2026-01-16"  # it does not say
    assert undone_day({**record, "detail": "note=not_written_off_at=2020-01-01"}) == "2026-01-16"


def test_a_day_stands_at_its_write_offs_less_what_was_undone_of_them():
    first, second = date(2026, 1, 15), date(2026, 1, 16)
    daily = DailyWriteOffs(written_off={"USD": {first: 2500, second: 480}}, undone={"USD": {first: 1250}})

    assert daily.net("USD") == {first: 1250, second: 480}
    assert daily.totals("USD") == (2980, 1250, 1730)
    assert daily.net("EUR") == {} and daily.totals("EUR") == (0, 0, 0)
    assert daily.currencies() == ["USD"]
