"""Which payment `reactor recover` applies: a person's choice stands, excess payments included."""

from reactor.console.recover import payment_source
from reactor.jobs.recovery import EXCESS


def test_the_excess_payments_chosen_stay_chosen_despite_one_payment_seen():
    assert payment_source(EXCESS, None, {"txn_1", EXCESS}) is None


def test_a_transaction_chosen_stands():
    assert payment_source("txn_2", "txn_1", {"txn_1"}) == "txn_2"


def test_with_no_choice_the_earlier_attempt_then_the_one_payment_seen_then_the_excess():
    assert payment_source(None, "txn_9", {"txn_1"}) == "txn_9"
    assert payment_source(None, None, {"txn_1", EXCESS}) == "txn_1"
    assert payment_source(None, None, {"txn_1", "txn_2"}) is None
    assert payment_source(None, None, set()) is None
