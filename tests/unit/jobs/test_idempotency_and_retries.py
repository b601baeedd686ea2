"""The pure helpers of the job layer."""

from types import SimpleNamespace

from reactor.jobs import idempotency_key
from reactor.jobs.retries import stretch_retry


def test_idempotency_key_is_stable_per_site_invoice_and_rule_and_fits_chargebee():
    key = idempotency_key("acme", "inv_1", "rule-a")
    assert key == idempotency_key("acme", "inv_1", "rule-a")
    assert len(key) <= 100
    assert (
        len(
            {
                key,
                idempotency_key("acme", "inv_2", "rule-a"),
                idempotency_key("acme", "inv_1", "rule-b"),
                idempotency_key("other", "inv_1", "rule-a"),
            }
        )
        == 4
    )


def test_retry_after_lengthens_only_the_next_interval():
    job = SimpleNamespace(retries_left=3, retry_intervals=[1, 5, 10])
    stretch_retry(job, 7.2)
    assert job.retry_intervals == [8, 5, 10]
    job.retries_left = 2
    stretch_retry(job, 2)
    assert job.retry_intervals == [8, 5, 10]


def test_retry_after_is_ignored_when_no_retry_is_left():
    job = SimpleNamespace(retries_left=0, retry_intervals=[1])
    stretch_retry(job, 30)
    assert job.retry_intervals == [1]
