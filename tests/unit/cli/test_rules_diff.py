"""`reactor rules diff` offline (a snapshot; no Chargebee, no Redis) refusing what it cannot answer:
a snapshot of the wrong shape, a time out of range, a --fail-over it cannot read. Each is exit 2
("error") and one line, never exit 1 ("changes"), which the documented CI recipe
(`... || [ $? -eq 1 ]`, docs/operations.md section 6) lets through. The online --snapshot is in
tests/integration/test_rules_diff.py."""

from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reactor.cli import main
from tests.helpers import REPO

HEAD = "version: 1\nmode: live\nlimits:\n  max_write_off: {USD: 500}\n  max_per_day: {USD: 100}\nrules:\n"
PROTECT = "  - name: protect\n    when: [customer.cf_segment: enterprise]\n    action: skip\n"
SMALL = "  - name: small\n    when: [invoice.amount_due: {lte: 25}]\n    action: write_off\n"
MEDIUM = "  - name: medium\n    when: [invoice.amount_due: {lte: 80}]\n    action: write_off\n"
INVOICE = {
    "id": "inv_1",
    "customer_id": "cus_1",
    "status": "not_paid",
    "dunning_status": "exhausted",
    "amount_due": 5000,
    "currency_code": "USD",
}
SNAPSHOT: dict[str, Any] = {  # as save_snapshot writes one
    "format": "reactor-rules-diff-snapshot/1",
    "taken_at": "2026-11-26T12:00:00+00:00",
    "source": "http://127.0.0.1:8001/api/v2",
    "invoices": [INVOICE],
    "customers": {"cus_1": {"id": "cus_1", "cf_segment": "smb"}},
    "subscriptions": {},
    "budgets_used": {"spent": {"USD": 1000}, "count": 1, "day": "2026-11-26", "hour": "2026-11-26T12"},
}
DEEP = 100_000


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """old.yaml and new.yaml (inv_1, 50 USD, newly written off), and the snapshot open.json."""
    paths = {"old": tmp_path / "old.yaml", "new": tmp_path / "new.yaml", "snapshot": tmp_path / "open.json"}
    paths["old"].write_text(HEAD + PROTECT + SMALL)
    paths["new"].write_text(HEAD + PROTECT + MEDIUM)
    paths["snapshot"].write_text(json.dumps(SNAPSHOT))
    return paths


def offline(files: dict[str, Path], *args: str) -> Result:
    """`reactor rules diff new.yaml --base old.yaml --invoices open.json ARGS`, in-process."""
    command = ["rules", "diff", str(files["new"]), "--base", str(files["old"]), "--invoices", str(files["snapshot"])]
    return CliRunner().invoke(main, [*command, *args])


def refused(result: Result, says: str) -> None:
    """Exit 2 with one line on stderr that says `says`; nothing on stdout, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def test_a_good_snapshot_gives_its_answer(files) -> None:
    assert offline(files).exit_code == 1  # inv_1 newly written off: 50 USD
    assert offline(files, "--fail-over", "USD=50").exit_code == 1
    assert offline(files, "--fail-over", "USD=49.99").exit_code == 3


def _set(path: str, value: Any) -> dict[str, Any]:
    """SNAPSHOT with the field at `path` (dotted; a number indexes a list) set to `value`."""
    data = copy.deepcopy(SNAPSHOT)
    *parents, last = path.split(".")
    where: Any = data
    for part in parents:
        where = where[int(part)] if isinstance(where, list) else where[part]
    where[int(last) if isinstance(where, list) else last] = value
    return data


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        # budget counts: a negative one would give the budget room it does not have; garbage is not "from zero"
        ("budgets_used.count", -5, "budgets_used.count must be a whole number from 0"),
        ("budgets_used.count", 1.5, "budgets_used.count must be a whole number from 0"),
        ("budgets_used.spent.USD", -100000, "budgets_used.spent['USD'] must be a whole number from 0"),
        ("budgets_used.spent.USD", "lots", "budgets_used.spent['USD'] must be a whole number from 0"),
        ("budgets_used.spent", [1000], "budgets_used.spent must be an object"),
        ("budgets_used", "today", "budgets_used must be an object"),
        ("budgets_used.day", "yesterday", "budgets_used.day must be a UTC day"),
        # the fields the diff reads of each invoice
        ("invoices.0", "inv_1", "invoices[0] must be an invoice object"),
        ("invoices.0.id", 7, "invoices[0].id must be a non-empty string"),
        ("invoices.0.amount_due", "5000", "invoices[0].amount_due must be a whole number of minor units"),
        ("invoices.0.amount_due", -5000, "invoices[0].amount_due must be a whole number of minor units"),
        ("invoices.0.currency_code", ["USD"], "invoices[0].currency_code must be a string"),
        ("invoices.0.customer_id", {"id": "cus_1"}, "invoices[0].customer_id must be a string or null"),
        ("invoices", {"inv_1": INVOICE}, "invoices must be a list"),
        ("customers", [], "customers must be an object of customers by id"),
        ("customers.cus_1", "smb", "customers['cus_1'] must be an object or null"),
        ("subscriptions", None, "subscriptions must be an object"),
        # when it was taken: decided at that time
        ("taken_at", 1764158400, "taken_at must be the ISO time"),
        ("taken_at", "9999-12-31T23:59:59-14:00", "taken_at '9999-12-31T23:59:59-14:00' is out of range"),
        ("source", ["somewhere"], "source must be a string"),
        # deeper than Chargebee nests: refused on reading, not a RecursionError while deciding
        ("invoices.0.line_items", nested(500), "'invoices' nests more than 64 levels deep"),
        ("customers.cus_1.meta_data", nested(70), "'customers' nests more than 64 levels deep"),
    ],
)
def test_a_snapshot_of_the_wrong_shape_is_refused_naming_what_is_wrong(files, field, value, says) -> None:
    files["snapshot"].write_text(json.dumps(_set(field, value)))
    refused(offline(files), f"{files['snapshot']}: {says}")


@pytest.mark.parametrize(
    ("at", "says"),
    [
        ("9999-12-31T23:59:59-14:00", "--at '9999-12-31T23:59:59-14:00' is out of range"),  # the year 10000 in UTC
        ("0001-01-01T00:00:00+14:00", "--at '0001-01-01T00:00:00+14:00' is out of range"),
        ("soon", "--at 'soon' is not an ISO time"),
    ],
)
def test_a_time_out_of_range_is_refused(files, at, says) -> None:
    refused(offline(files, "--at", at), says)
    assert offline(files, "--at", "9999-12-31T23:59:59Z").exit_code == 1  # the last moment there is: decided


@pytest.mark.parametrize(
    ("values", "says"),
    [
        (["100", "200"], "--fail-over given twice without a currency ('100' and '200')"),
        (["USD=100", "usd=50"], "--fail-over given twice for USD ('USD=100' and 'usd=50')"),
        (["=500"], "--fail-over '=500': name a currency before '='"),
        (["-5"], "--fail-over '-5': write an amount of at least 0"),
        (["USD=-5"], "--fail-over 'USD=-5': write an amount of at least 0"),
        (["USD=lots"], "--fail-over 'USD=lots': write an amount"),
    ],
)
def test_a_fail_over_that_cannot_be_read_is_refused(files, values, says) -> None:
    refused(offline(files, *(arg for value in values for arg in ("--fail-over", value))), says)


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("--invoices", "is nested more than 64 levels deep"),  # RecursionError in json.loads
        ("--at", "is out of range"),  # OverflowError in the budgets' UTC day
    ],
)
def test_the_ci_recipe_fails_on_what_would_have_been_a_traceback(files, how, says) -> None:
    """The documented recipe, `reactor rules diff ... || [ $? -eq 1 ]`, as a shell runs it: exit 2,
    so the recipe fails, with one line on stderr."""
    if how == "--invoices":  # written by hand: json.dumps cannot nest so deep either
        text = json.dumps(_set("invoices.0.line_items", "DEEP"))
        files["snapshot"].write_text(text.replace('"DEEP"', "[" * DEEP + "]" * DEEP))
        args = ["--invoices", str(files["snapshot"])]
    else:
        args = ["--invoices", str(files["snapshot"]), "--at", "9999-12-31T23:59:59-14:00"]
    command = [sys.executable, "-m", "reactor", "rules", "diff", str(files["new"]), "--base", str(files["old"]), *args]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(files["new"].parent)}
    alone = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert alone.returncode == 2, alone.stderr
    assert alone.stderr.startswith("Error: ") and alone.stderr.count("\n") == 1 and says in alone.stderr
    script = shlex.join(command) + ' || [ "$?" -eq 1 ]'
    recipe = subprocess.run(["sh", "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert recipe.returncode != 0, recipe.stderr
