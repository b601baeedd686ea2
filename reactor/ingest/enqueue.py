"""The Redis writes that enqueue an evaluation job, as RQ makes them, at a fraction of the cost.

`Queue.enqueue` builds a Job object and serialises some thirty fields: a fifth of a webhook
request's CPU (docs/benchmarks.md, "Figures behind choices in the code"). For evaluation jobs those
writes are the same every time except for the job id, the event's ids and type (in the pickled call,
the meta and the description) and two timestamps. So, once per process, `JobTemplate` captures the
writes RQ makes for a probe event from a pipeline that is never executed, finds the per-event parts
in them, and afterwards fills those parts in for each event.

The template is checked when it is made: it must rebuild the writes RQ makes for a second,
different probe exactly, timestamps aside. If it does not (a future RQ that lays jobs out
differently), no template is used and every job goes through `Queue.enqueue`, as before; the
test suite compares the two on real Redis so that an RQ upgrade that changes the layout shows.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rq import Queue, Retry
from rq.utils import now, utcformat

log = logging.getLogger(__name__)

Command = tuple[Any, ...]

_TIMESTAMP_FIELDS = ("created_at", "enqueued_at")


@dataclass(frozen=True)
class JobSpec:
    """What differs between two evaluation jobs, or two triage jobs (`kind` "triage": the job that
    drains the inbox, woken by this event; reactor/ingest/inbox.py)."""

    event_id: str
    event_type: str
    invoice_id: str
    job_id: str
    kind: str = "evaluate"

    @property
    def description(self) -> str:
        if self.kind == "triage":
            return f"triage the inbox (woken by {self.event_type} {self.event_id}, invoice {self.invoice_id})"
        return f"evaluate {self.event_type} {self.event_id} (invoice {self.invoice_id})"

    @property
    def meta(self) -> dict[str, str]:
        if self.kind == "triage":  # no event_id: a failed triage job is no dead letter of that event
            return {"woken_by": self.event_id}
        return {"event_id": self.event_id, "event_type": self.event_type, "invoice_id": self.invoice_id}


_PROBES = (
    JobSpec("ev_probe_template_a", "probe_type_one", "inv_probe_a", "evaluate-ev_probe_template_a"),
    JobSpec("ev_B-probe-2", "other_probe", "inv_probe_bbbbbbbb", "evaluate-ev_B-probe-2"),
)


class EvaluationJobs:
    """Builds the writes that enqueue `evaluate(event_id)` for one event, with RQ's own layout.

    `result_ttl` 0: a job that succeeds is deleted as it ends, with no result kept. Its outcome is
    in the audit record the job writes (reactor/jobs/trail.py), and RQ's result (a stream per job,
    some 4 kB) and finished job hash (1.6 kB) would otherwise stay 500 s: during a burst, more than
    the stored event itself (docs/benchmarks.md, "Redis memory per event"). A job that fails keeps
    everything for `failure_ttl`: that is the dead letter."""

    def __init__(
        self,
        queue: Queue,
        retry: Retry | None = None,
        job_timeout: int = 120,
        failure_ttl: int = 0,
        result_ttl: int = 0,
        at_front: bool = False,
    ):
        self.queue = queue
        self.at_front = at_front  # triage jobs: ahead of the evaluation jobs they hand events to
        self.retry = retry
        self.job_timeout = job_timeout
        self.failure_ttl = failure_ttl
        self.result_ttl = result_ttl
        self._templates: dict[str, JobTemplate | None] = {}

    def through_rq(self, evaluate: Callable[..., Any] | str, spec: JobSpec) -> list[Command]:
        """The writes `Queue.enqueue` makes, captured from a pipeline that is never executed (RQ does
        no reads when given a pipeline, apart from asking the server's version once)."""
        with self.queue.connection.pipeline(transaction=False) as pipe:
            self.queue.enqueue(
                evaluate,
                spec.event_id,
                job_id=spec.job_id,
                retry=self.retry,
                job_timeout=self.job_timeout,
                failure_ttl=self.failure_ttl,
                result_ttl=self.result_ttl,
                description=spec.description,
                meta=spec.meta,
                at_front=self.at_front,
                pipeline=pipe,
            )
            commands = [args for args, _options in pipe.command_stack if args[0] not in ("MULTI", "EXEC")]
            pipe.reset()
        return commands

    def commands(self, evaluate: Callable[..., Any] | str, spec: JobSpec) -> list[Command]:
        """The writes for `spec`: from the template when this process has a checked one, else through RQ."""
        if not isinstance(evaluate, str):
            return self.through_rq(evaluate, spec)
        if evaluate not in self._templates:
            self._templates[evaluate] = self._make_template(evaluate)
        template = self._templates[evaluate]
        if template is None:
            return self.through_rq(evaluate, spec)
        return template.fill(spec, utcformat(now()))

    def _make_template(self, evaluate: str) -> JobTemplate | None:
        first, second = _PROBES
        template = JobTemplate.capture(self.through_rq(evaluate, first), first, evaluate, self.queue)
        if template is None:
            log.warning("RQ's job layout was not recognised; evaluation jobs are built through Queue.enqueue")
            return None
        expected = self.through_rq(evaluate, second)
        if not template.rebuilds(expected, second):
            log.warning("RQ's job layout did not match its template; evaluation jobs are built through Queue.enqueue")
            return None
        return template


def _stamp(_spec: JobSpec, text: str) -> str:
    return text


class JobTemplate:
    """RQ's writes for one probe job, with the positions of the per-event parts."""

    def __init__(self, commands: list[Command], slots: list[tuple[int, int, Callable[[JobSpec, str], Any]]]):
        self.commands = commands
        self.slots = slots
        self.stamps = {(c, a) for c, a, fill in slots if fill is _stamp}

    @classmethod
    def capture(cls, commands: list[Command], probe: JobSpec, evaluate: str, queue: Queue) -> JobTemplate | None:
        """Locate in `commands` (RQ's writes for `probe`) every value that depends on the event."""
        dumps = queue.serializer.dumps

        def data(spec: JobSpec, _when: str) -> bytes:
            return zlib.compress(dumps((evaluate, None, (spec.event_id,), {})))

        def meta(spec: JobSpec, _when: str) -> bytes:
            return dumps(spec.meta)

        def description(spec: JobSpec, _when: str) -> str:
            return spec.description

        computed = {data(probe, ""): data, meta(probe, ""): meta, probe.description: description}
        slots: list[tuple[int, int, Callable[[JobSpec, str], Any]]] = []
        for c, command in enumerate(commands):
            for a, arg in enumerate(command):
                if a > 0 and command[a - 1] in _TIMESTAMP_FIELDS and command[0] == "HSET":
                    slots.append((c, a, _stamp))
                elif isinstance(arg, (str, bytes)) and arg in computed:
                    slots.append((c, a, computed[arg]))
                elif isinstance(arg, str) and probe.job_id in arg:
                    head, tail = arg.split(probe.job_id, 1)
                    slots.append((c, a, lambda spec, _s, head=head, tail=tail: f"{head}{spec.job_id}{tail}"))
        found = {fill for _c, _a, fill in slots}
        if not {data, meta, description, _stamp} <= found:
            return None
        return cls(commands, slots)

    def fill(self, spec: JobSpec, stamp: str) -> list[Command]:
        commands = [list(command) for command in self.commands]
        for c, a, fill in self.slots:
            commands[c][a] = fill(spec, stamp)
        return [tuple(command) for command in commands]

    def rebuilds(self, expected: list[Command], spec: JobSpec) -> bool:
        """Whether filling in `spec` gives `expected`, RQ's own writes for it, timestamps aside."""
        built = self.fill(spec, "")
        if len(built) != len(expected) or any(len(b) != len(e) for b, e in zip(built, expected, strict=True)):
            return False
        return all(
            (c, a) in self.stamps or b == e
            for c, (built_command, expected_command) in enumerate(zip(built, expected, strict=True))
            for a, (b, e) in enumerate(zip(built_command, expected_command, strict=True))
        )
