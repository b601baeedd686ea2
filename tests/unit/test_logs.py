"""reactor/logs.py: one handler for everything a process logs, JSON off a terminal."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings

import pytest
from rq.exceptions import StopRequested

from reactor.logs import setup_logging, wants_json

FIELDS = {"ts", "level", "logger", "msg"}


@pytest.fixture
def restored_logging():
    """setup_logging changes the process's logging, warnings and excepthook: put them back."""
    root = logging.getLogger()
    handlers, level, hook = root.handlers[:], root.level, sys.excepthook
    # captureWarnings(True) does nothing while an earlier call is in force, and pytest puts the
    # warnings module back after each test without telling logging: start from off.
    logging.captureWarnings(False)
    yield
    logging.captureWarnings(False)
    root.handlers[:], sys.excepthook = handlers, hook
    root.setLevel(level)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_format_follows_the_setting_and_otherwise_the_terminal(monkeypatch):
    assert wants_json(True) and not wants_json(False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert not wants_json(None)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert wants_json(None)


def test_a_warning_is_a_log_line(restored_logging, capsys):
    setup_logging(json_lines=True)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("something odd", RuntimeWarning, stacklevel=1)

    [line] = json_lines(capsys.readouterr().err)
    assert line.keys() >= FIELDS and line["logger"] == "py.warnings" and "something odd" in line["msg"]


def test_an_uncaught_exception_is_one_log_line_with_its_traceback(restored_logging, capsys):
    setup_logging(json_lines=True)
    try:
        raise ValueError("boom")
    except ValueError:
        sys.excepthook(*sys.exc_info())

    [line] = json_lines(capsys.readouterr().err)
    assert line["level"] == "critical" and line["msg"] == "uncaught exception: ValueError"
    assert "Traceback" in line["exc"] and "boom" in line["exc"]


def test_logging_loads_no_rq_in_a_process_that_runs_no_jobs():
    """gunicorn's master logs through this handler; RQ (and with it redis-py and ssl) loaded there
    would be imported before the gevent workers patch them."""
    code = (
        "import logging, sys; from reactor.logs import setup_logging; setup_logging(json_lines=True); "
        "logging.getLogger('gunicorn.error').info('Starting'); print('rq' in sys.modules, 'ssl' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["False", "False"]
    [line] = json_lines(done.stderr)
    assert line["logger"] == "gunicorn.error" and line["msg"] == "Starting"


class StoppedWhileFormatting(logging.Formatter):
    """A formatter interrupted as RQ's SIGTERM handler interrupts an idle worker's log call."""

    def format(self, record: logging.LogRecord) -> str:
        raise StopRequested()


def test_a_stop_raised_by_a_signal_handler_inside_a_log_call_is_not_swallowed(restored_logging, capsys):
    setup_logging(json_lines=True)
    logging.getLogger().handlers[0].setFormatter(StoppedWhileFormatting())

    with pytest.raises(StopRequested):
        logging.getLogger("rq.worker").info("cleaning registries")
    assert "Logging error" not in capsys.readouterr().err


def test_an_error_of_the_line_itself_is_still_reported_and_passed_over(restored_logging, capsys):
    setup_logging(json_lines=True)
    logging.getLogger("reactor.test").info("%d invoices", "not a number")  # must not raise

    assert "--- Logging error ---" in capsys.readouterr().err
