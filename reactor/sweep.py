"""The path RQ has stored for the daily sweep: jobs scheduled before the sweep moved to
reactor/jobs/sweep.py name `reactor.sweep.scheduled_sweep`, and must keep running
(tests/integration/test_job_paths.py enqueues each stored path and runs it)."""

from .jobs.sweep import scheduled_sweep

__all__ = ["scheduled_sweep"]
