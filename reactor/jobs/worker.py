"""The RQ worker that runs our jobs, with RQ's scheduler (retries, re-checks) in the same process:
abandoned jobs recovered within settings rather than RQ's ten minutes, and SIGTERM/SIGINT handled
from the first line of `reactor worker` (docs/guarantees.md says what each bound holds)."""

from __future__ import annotations

import itertools
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from rq import Queue, Worker
from rq import scheduler as rq_scheduler
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import AbandonedJobError, StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.utils import as_text
from rq.worker import DequeueStrategy, WorkerStatus
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from .. import jobs
from ..chargebee.ratelimit import ChargebeeRateLimit
from ..config import Settings
from ..keys import EVALUATE_JOB, TRIAGE_JOB
from ..redaction import redact
from ..redis_wait import wait_for_redis
from ..rules import RulesError
from .audit import Outcome
from .triage import wake_triage

log = logging.getLogger(__name__)

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}

RESTART_BACKOFF = ExponentialBackoff(cap=30, base=1)
"""The pause before a worker that RQ gave up on looks for Redis again: 1 s, doubling, at most 30 s."""


class ReactorWorker(Worker):
    """RQ's forking worker with bounded recovery of abandoned jobs, refreshing the rules in the
    parent before each fork so every work horse inherits the current rules.

    A worker killed mid-job (SIGKILL, OOM, a lost machine) leaves its job in RQ's StartedJobRegistry;
    RQ's maintenance (`StartedJobRegistry.cleanup`, run by any live worker) retries it once its
    execution has had no heartbeat for its TTL. RQ's defaults make that 90 s of silence plus up to
    10 minutes until the next maintenance, with an idle worker blocking 405 s on the queue. Here all
    three are settings, so recovery takes REACTOR_ABANDONED_AFTER + REACTOR_MAINTENANCE_INTERVAL (+
    the invoice lock, jobs/write_off.py), for a job in a work horse or in the worker process alike
    (both send heartbeats while it runs). The retry of an abandoned job is enqueued at once, not
    scheduled (`retry_abandoned_at_once`): the worker that died may have run the scheduler, whose
    lock RQ keeps for another minute.

    RQ handles SIGTERM and SIGINT only inside its work loop, entered after "Listening on" and the
    scheduler's fork; before that, and between the runs of run_worker, the handlers here do, so a
    stop signal always ends the worker with status 0, its death recorded, its scheduler stopped."""

    def __init__(self, *args: Any, abandoned_after: int = 60, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.abandoned_after = abandoned_after
        self._claim_share = self.connection.register_script(_CLAIM_SHARE)
        self.push_exc_handler(retry_abandoned_at_once)

    signalled_to_stop = False
    _stop_signal: int | None = None
    """A stop signal that came while RQ's handlers were not in place: acted on once they are."""

    def work(self, *args: Any, **kwargs: Any) -> bool:
        """RQ's work loop, with the stop signals handled from its first line. RQ installs its
        handlers only after it has registered the worker, said "Listening on" and forked the
        scheduler: a SIGTERM in between ended the process with Python's default action (status
        -15, its death unrecorded, the scheduler left running with its lock)."""
        self._remember_stop_signals()
        return super().work(*args, **kwargs)

    def _remember_stop_signals(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._remember_stop)

    def _remember_stop(self, signum: int, frame: Any) -> None:
        """Raising here, as RQ's handler does, would cut off the registration or the scheduler's
        start, outside the loop whose teardown undoes them: remember the signal instead."""
        self.signalled_to_stop = True
        self._stop_signal = signum

    def _install_signal_handlers(self) -> None:
        """RQ's handlers, then the stop asked for while the worker started, as RQ's handler does it."""
        super()._install_signal_handlers()
        if self._stop_signal is None:
            return
        try:
            self.request_stop(self._stop_signal, None)
        except StopRequested:  # RQ's way out of an idle loop; this one has not begun
            self._stop_requested = True  # its first turn stops, and its teardown runs

    def teardown(self) -> None:
        """RQ's, with a first stop signal remembered rather than raised into it: the loop can end on
        a Redis error with RQ's handler in place, which would cut off the scheduler's stop and the
        record of the worker's death. run_worker then stops on `signalled_to_stop`."""
        if self._shutdown_requested_date is None:  # a second signal keeps RQ's cold-shutdown handler
            self._remember_stop_signals()
        super().teardown()

    def request_stop(self, signum: int, frame: Any) -> None:
        """Remember that a person or the process manager asked us to stop (SIGTERM/SIGINT): RQ raises
        StopRequested when idle and leaves its own flag unset, so run_worker could not tell this
        from a stop caused by a Redis outage."""
        self.signalled_to_stop = True
        super().request_stop(signum, frame)

    def request_force_stop(self, signum: int, frame: Any) -> None:
        """A second SIGTERM does not cut the running job off: SIGTERM comes from process managers,
        and two of them can send it (`reactor run`'s Ctrl-C after someone else's SIGTERM, systemd
        to the whole group): RQ's cold shutdown would kill the work horse mid-call. The worker
        finishes its job and stops; SIGINT twice (Ctrl-C on a terminal) and SIGKILL still end it
        at once."""
        if signum == signal.SIGTERM:
            log.warning("already stopping once the running job ends; SIGTERM again ignored (SIGKILL stops at once)")
            return
        super().request_force_stop(signum, frame)

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            context = jobs.context_for(queue.name)
            try:
                context.rules.current()
            except RulesError as exc:
                log.error("no valid rules; jobs will fail until rules.yaml is fixed: %s", exc)
            if defer_for_rate_limit(context, job, queue):
                return
            self.run_job(job, queue)
            self.take_next_from(job, queue)
        finally:
            self.release_claim()

    def run_job(self, job: Job, queue: Queue) -> None:
        """RQ's forking execution, a work horse per job, for the jobs that call Chargebee: a hung call,
        a leak or a crash ends the horse, not the worker. A triage job calls nothing outside Redis and
        runs in this process (run_in_process): a fork and its bookkeeping cost 3 to 4 times the
        triage of one event (bench/sites.py), paid once per event on the way to its write-off."""
        if job.func_name == TRIAGE_JOB:
            self.run_in_process(job, queue)
        else:
            super().execute_job(job, queue)

    _heartbeats: Heartbeats | None = None

    def run_in_process(self, job: Job, queue: Queue) -> None:
        """RQ's SimpleWorker execution, with RQ's heartbeats sent from a thread while the job runs, as
        a forking worker sends them while its horse runs: a job cut off (a Redis outage, the worker
        killed) is recovered REACTOR_ABANDONED_AFTER after its last heartbeat, not after its timeout."""
        execution = self.prepare_execution(job)
        self._heartbeats = Heartbeats(self, job, execution)
        try:
            self.perform_job(job, queue, execution)
        finally:
            self._heartbeats.stop()
            self._heartbeats = None
        self.set_state(WorkerStatus.IDLE)

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """RQ's, after the last heartbeat of a job run in this process: a heartbeat after its end would
        put the finished execution back in the StartedJobRegistry."""
        if self._heartbeats is not None:
            self._heartbeats.stop()
        super().handle_execution_ended(job, queue, heartbeat_ttl)

    _stayed = False
    """The job just run was taken from the queue of the triage job before it (take_next_from)."""

    def take_next_from(self, job: Job, queue: Queue) -> None:
        """After a triage job, look at its queue first once more: its events' own jobs are there now,
        the second half of work the site's turn began. RQ's round robin would serve every other site
        first, so with another site busy each triaged event waited for that site's job on a worker
        (bench/sites.py: B's evaluations started 50-170 ms after their triage during A's burst,
        against 20 ms with A idle). Once only: a triage job that was itself taken this way (a
        successor of one that ran out of time) moves the turn on, so one site's inbox cannot keep a
        worker from the others."""
        stay = job.func_name == TRIAGE_JOB and not self._stayed and len(self._ordered_queues) > 1
        self._stayed = stay
        if stay:
            same = [q for q in self._ordered_queues if q.name == queue.name]
            self._ordered_queues = same + [q for q in self._ordered_queues if q.name != queue.name]

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        """RQ's dequeue, passing over, while other sites' queues are listened to, the queue of a site
        that must wait (sites_to_pass_over): one with no Chargebee call slot free, or whose jobs
        already run on all but one of the workers serving it. Such a site's jobs stay queued, rather
        than being taken, found throttled and deferred again and again (defer_for_rate_limit), or
        taking the last worker another site's next event needs; its queue is looked at again when
        its next slot frees or after PASS_OVER_POLL. A job taken is run only once this worker has
        claimed the site's share (claim_share); if another worker claimed it first, the job goes
        back to the front of its queue. When every site must wait, or in burst mode (nothing
        blocks), every queue is listened to, as RQ does."""
        if timeout is None or max_idle_time is not None or len(self._ordered_queues) < 2:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        limits, claims = self.site_limits_and_claims()
        while True:
            passed = sites_to_pass_over(self._ordered_queues, limits, claims, self.connection)
            if len(passed) == len(self._ordered_queues):
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            every = self._ordered_queues
            again_in = max(min(passed.values(), default=timeout), PASS_OVER_MIN)
            self._ordered_queues = listened = [q for q in every if q.name not in passed]
            try:  # RQ's own loop (heartbeats, maintenance, a stop), for no longer than again_in
                result = super().dequeue_job_and_maintain_ttl(min(timeout, again_in), again_in)  # type: ignore[arg-type]
            finally:  # the sites passed over come first when they can go on
                self._ordered_queues = [q for q in every if q.name in passed] + self._ordered_queues
            if result is None:
                continue
            job, queue = result
            try:
                if len(listened) == 1:
                    # RQ takes from a lone queue with LMOVE into its intermediate list, and empties
                    # that only in a worker of one queue: left there, RQ's maintenance would fail the
                    # job a minute later as stuck. Taken from several, it is taken with BLPOP, as here.
                    queue.intermediate_queue.remove(job.id)
                if self.claim_share(queue, claims[queue.name]):
                    return result
            except StopRequested:  # SIGTERM while idle: the job taken goes back before the worker stops
                queue.push_job_id(job.id, at_front=True)
                raise
            queue.push_job_id(job.id, at_front=True)  # another worker claimed the site's share first
            log.info("job %s put back: the other workers run its site's jobs", job.id, extra={"job_id": job.id})

    _sites: tuple[dict[str, ChargebeeRateLimit | None], dict[str, str]] | None = None

    def site_limits_and_claims(self) -> tuple[dict[str, ChargebeeRateLimit | None], dict[str, str]]:
        """The rate limit and the worker-claims key of each site served, by queue name (built once)."""
        if self._sites is None:
            sites = jobs.installed()
            limits = {context.queue.name: context.rate_limit for context in sites}
            self._sites = limits, {context.queue.name: context.keys.worker_claims() for context in sites}
        return self._sites

    _claimed: str | None = None
    """The worker-claims key (`Keys.worker_claims`) of the site whose share this worker claimed."""

    def claim_share(self, queue: Queue, key: str) -> bool:
        """Claim a place among the workers running the site's jobs, which are at most all but one of
        the workers serving it while more of its jobs wait (a site keeping up, its queue empty once
        this job is taken, may use every worker: the next event of another site then waits for one
        job at most, as with round robin alone); False when they are all taken. Checked and taken in
        one script (_CLAIM_SHARE): two idle workers woken together (by the slot that frees) would
        otherwise both see the site below its share and both take its jobs. The claim lasts until
        the job is in RQ's StartedJobRegistry (prepare_execution), CLAIM_TTL at most. `key`: the
        site's worker claims (Keys.worker_claims)."""
        now = time.time()
        keys = [queue.started_job_registry.key, key, queue.key, WORKERS_BY_QUEUE_KEY % queue.name]
        claimed = self._claim_share(keys=keys, args=[now, now + CLAIM_TTL, self.name])
        self._claimed = key if claimed else None
        return bool(claimed)

    def release_claim(self) -> None:
        if self._claimed is not None:
            self.connection.zrem(self._claimed, self.name)
            self._claimed = None

    def prepare_execution(self, job: Job) -> Execution:
        """RQ's, then this worker's claim on the site's share is dropped: the job now counts in RQ's
        StartedJobRegistry."""
        execution = super().prepare_execution(job)
        self.release_claim()
        return execution

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        """RQ's own (rq.worker.base), with ReactorScheduler: the same locks, burst and process."""
        self.scheduler = ReactorScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            self.scheduler.release_locks()
            self.scheduler.register_death()

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: Any, execution: Any) -> None:
        """RQ's success handling, after dropping the executions of earlier attempts that are gone.
        An evaluation job keeps no result (result_ttl 0, reactor/ingest/enqueue.py), so RQ deletes
        it as it ends; RQ 3.0's delete reads every execution the job ever had and raises on one
        whose record expired with a dead worker, which would turn a recovered job into a retry and
        then a dead letter. Only a job that was retried can have one: first attempts pay nothing."""
        if job.retry_intervals and job.retries_left is not None and job.retries_left < len(job.retry_intervals):
            forget_lost_executions(self.connection, job, keep=getattr(execution, "id", None))
        super().handle_job_success(job, queue, started_job_registry, execution)

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
        execution: Execution | None = None,
    ) -> None:
        """RQ's failure handling, with the traceback it keeps in Redis (the dead letter's, shown by
        `reactor dlq show` and the dashboard) redacted: an error may quote a URL or a key."""
        super().handle_job_failure(job, queue, started_job_registry, redact(exc_string), execution)

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        """The work horse died mid-job (SIGKILL, OOM, killed by RQ past its timeout): the attempt
        ends without an outcome of its own, so record one. RQ then retries or dead-letters it."""
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        how = f"signal {os.WTERMSIG(ret_val)}" if ret_val and os.WIFSIGNALED(ret_val) else f"status {ret_val}"
        jobs.record_interrupted(
            jobs.context_for(job.origin), job, Outcome.KILLED, f"the work horse running the job died ({how})"
        )

    def run_maintenance_tasks(self) -> None:
        """RQ's maintenance, then a triage job for an inbox whose events have none on its way."""
        super().run_maintenance_tasks()
        for context in jobs.installed():  # each site's inbox
            try:
                wake_triage(context)
            except (redis.ConnectionError, redis.TimeoutError, StopRequested):
                raise  # RQ's own handling: a Redis outage, or SIGTERM landing here on an idle worker
            except Exception:
                log.exception("could not check the inbox for events without a triage job")

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """A running job's execution expires this long after the worker's last heartbeat; then
        maintenance treats the job as abandoned. RQ's fixed 60 s of grace becomes a setting."""
        return self.abandoned_after

    @property
    def dequeue_timeout(self) -> int:
        """Wake up from an empty queue in time for the next maintenance run."""
        return max(1, min(super().dequeue_timeout, self.maintenance_interval))


class ReactorScheduler(rq_scheduler.RQScheduler):
    """RQ's scheduler, whose process, when it dies of an error (Redis gone, a password changed),
    says so in RQ's one `rq.scheduler` line with the traceback in it, and no longer also in the plain
    traceback multiprocessing prints to stderr after it, which broke the one-JSON-object-a-line log."""

    def start(self) -> Any:
        """RQ's, with the stop signals blocked across the fork: the child starts with the worker's
        handlers, which would stop the worker's copy in it instead of the scheduler, and the
        worker's join would then wait for ever. The child unblocks them once it has its own."""
        self._status = self.Status.STARTED
        self._connection = None  # as RQ's: rebuilt in the forked process, not shared with it
        self._process = rq_scheduler.ForkProcess(target=_run_scheduler, args=(self,), name="Scheduler")
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            self._process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return self._process


def _run_scheduler(scheduler: rq_scheduler.RQScheduler) -> None:
    scheduler._install_signal_handlers()  # a signal that came since the fork is delivered now, to them
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        rq_scheduler.run(scheduler)  # logs an error with its traceback, then raises it again
    except Exception:
        sys.exit(1)


CALLS_PER_JOB = 2
"""Chargebee calls an evaluation job makes as a rule (a fresh fetch, the write-off), to spread the
deferred jobs of a site at its limit over the time its queue needs."""


def defer_for_rate_limit(context: jobs.JobContext, job: Job, queue: Queue) -> bool:
    """In a worker serving several sites: an evaluation job whose site has no rate-limit slot free
    within SHARED_MAX_WAIT is not run but scheduled again, looked at in this process before any
    fork, so a site at its limit (or paused by a 429) costs the other sites' jobs a few Redis round
    trips, not a work horse each. It is put back at the slot's time plus a random part of the time
    the site's queue needs at its limit, so the backlog is not looked at again all at once. True
    when deferred; on any doubt (Redis errors) the job runs, and its own wait for a slot decides."""
    if len(jobs.installed()) < 2 or job.func_name != EVALUATE_JOB or context.rate_limit is None:
        return False
    limit = context.rate_limit
    try:
        wait = limit.free_in()
        if wait <= SHARED_MAX_WAIT:
            return False
        backlog = queue.count * CALLS_PER_JOB * limit.window / limit.calls
        when = datetime.now(timezone.utc) + timedelta(seconds=wait + random.uniform(0, backlog))
        queue.schedule_job(job, when)
    except redis.RedisError as exc:
        log.warning("could not look at the rate limit before job %s (%s); running it", job.id, exc)
        return False
    log.debug("job %s deferred: no Chargebee call slot for %.1f s", job.id, wait, extra={"job_id": job.id})
    return True


PASS_OVER_POLL = 0.5
"""Seconds before a worker looks again at a site it passed over because that site's jobs ran on all
but one of the workers serving it (the workers running them take its next jobs meanwhile)."""
CLAIM_TTL = 10
"""Seconds a worker's claim on a site's share lasts if the worker dies before its job starts."""

# KEYS[1] the site queue's StartedJobRegistry (RQ's), KEYS[2] the site's worker claims, KEYS[3] the
# queue, KEYS[4] RQ's set of the workers listening on it; ARGV[1] now, ARGV[2] the claim's end,
# ARGV[3] this worker. Returns 1 when claimed (or when one worker alone serves the site). Redis runs
# it alone, so no other worker counts between the count and the claim.
_CLAIM_SHARE = """
local share = redis.call('SCARD', KEYS[4]) - 1
if share < 1 then return 1 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[3])
local busy = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf') + redis.call('ZCARD', KEYS[2])
if busy >= share and redis.call('LLEN', KEYS[3]) > 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

PASS_OVER_MIN = 0.05
"""The shortest wait before a site passed over is looked at again, so that a slot about to free does
not turn the worker's wait on the other queues into a loop of Redis calls."""


def sites_to_pass_over(
    queues: list[Queue],
    limits: Mapping[str, ChargebeeRateLimit | None],
    claims: Mapping[str, str],
    connection: redis.Redis,
) -> dict[str, float]:
    """The queues, among those of a worker serving several sites, whose site must wait: the seconds
    until it is looked at again. A site waits while it has no Chargebee call slot free (until one
    frees), and while its jobs run on all but one of the workers serving it with more than one of
    them queued, so that another site's next event does not wait for one of its jobs to end
    (PASS_OVER_POLL; one job left may be taken, see claim_share). `limits` are the sites'
    rate limits and `claims` their worker-claims keys, by queue name. Running jobs are RQ's live
    executions (StartedJobRegistry entries not yet expired) and the workers' claims on the way to
    one (ReactorWorker.claim_share); workers, RQ's registry of the workers listening on the queue.
    A site whose state cannot be read (a Redis error) is not passed over."""
    passed: dict[str, float] = {}
    for queue in queues:
        limit = limits.get(queue.name)
        try:
            wait = limit.free_in() if limit is not None else 0.0
            if wait <= 0:
                now = time.time()
                with connection.pipeline(transaction=False) as pipe:  # one round trip
                    pipe.scard(WORKERS_BY_QUEUE_KEY % queue.name)  # RQ's Worker.count(queue=queue)
                    pipe.llen(queue.key)
                    pipe.zcount(queue.started_job_registry.key, now, "+inf")
                    if queue.name in claims:
                        pipe.zcount(claims[queue.name], now, "+inf")
                    workers, waiting, *running = pipe.execute()
                backlog = workers > 1 and sum(running) >= workers - 1 and waiting > 1
                wait = PASS_OVER_POLL if backlog else 0.0
        except redis.RedisError:
            continue
        if wait > 0:
            passed[queue.name] = wait
    return passed


def forget_lost_executions(connection: redis.Redis, job: Job, keep: str | None) -> None:
    """Remove from the job's execution registry the executions whose own record is gone."""
    registry = job.execution_registry
    ids = [as_text(raw) for raw in connection.zrange(registry.key, 0, -1)]
    ids = [execution_id for execution_id in ids if execution_id != keep]
    if not ids:
        return
    with connection.pipeline(transaction=False) as pipe:
        for execution_id in ids:
            pipe.exists(Execution(execution_id, job.id, connection).key)
        alive = pipe.execute()
    lost = [execution_id for execution_id, exists in zip(ids, alive, strict=True) if not exists]
    if lost:
        connection.zrem(registry.key, *lost)


def retry_abandoned_at_once(job: Job, exc_type: type, exc_value: BaseException, tb: Any) -> bool:
    """Exception handler: RQ calls it from StartedJobRegistry.cleanup right before it retries an
    abandoned job. Making this retry's interval 0 enqueues the job instead of scheduling it; the
    retry still counts against the job's retries, as RQ intends."""
    if exc_type is AbandonedJobError:
        reason = "the worker running the job stopped (killed, or its machine lost) and left it unfinished"
        try:
            jobs.record_interrupted(jobs.context_for(job.origin), job, Outcome.KILLED, reason)
        except Exception:  # no context in this process: RQ's own handling goes on
            log.exception("could not record the abandoned job %s", job.id)
    if exc_type is AbandonedJobError and job.retries_left and job.retry_intervals:
        intervals = list(job.retry_intervals)
        index = max(len(intervals) - job.retries_left, 0)
        intervals[index] = 0
        job.retry_intervals = intervals
        log.warning("job %s was abandoned by a dead worker; retrying it now", job.id, extra={"job_id": job.id})
    return True


class Heartbeats:
    """RQ's heartbeats (`maintain_heartbeats`: the worker's, the execution's, the job's) every
    job_monitoring_interval from a thread, for a job running in the worker's own main thread, where
    RQ's job timeout (SIGALRM) still applies. None is sent once stop() has returned."""

    def __init__(self, worker: Worker, job: Job, execution: Execution):
        self.worker, self.job, self.execution = worker, job, execution
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"heartbeats {job.id}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self.worker.job_monitoring_interval):
            with self._lock:
                if self._stopped.is_set():
                    return
                try:
                    self.worker.maintain_heartbeats(self.job, self.execution)
                except Exception as exc:  # the thread goes on: the next one may get through
                    log.warning("could not send the heartbeat of job %s: %s", self.job.id, exc)

    def stop(self) -> None:
        with self._lock:  # waits for a heartbeat being sent
            self._stopped.set()


class ReactorSimpleWorker(ReactorWorker):
    """Runs each job in the worker process itself, like RQ's SimpleWorker: no fork per job (see
    REACTOR_WORKER_CLASS in docs/benchmarks.md), heartbeats sent from a thread (run_in_process). Job
    timeouts still apply (RQ's SIGALRM death penalty works in the main thread); what is lost is
    isolation: a job that leaks memory or crashes the interpreter takes the worker with it (its job
    is then retried as abandoned)."""

    def run_job(self, job: Job, queue: Queue) -> None:
        self.run_in_process(job, queue)


WORKER_CLASSES: dict[str, type[ReactorWorker]] = {"fork": ReactorWorker, "simple": ReactorSimpleWorker}


def raise_stop_on_signals() -> None:
    """Make SIGTERM and SIGINT raise StopRequested, for where no RQ worker runs: the start of
    `reactor worker` (its wait for Redis included) and the pause before run_worker starts a worker
    again. Nothing is registered there to undo, and a wait for Redis must not outlast the signal;
    Python's defaults would end the process with status -15 (SIGTERM) or a traceback (SIGINT)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_stop)


def _raise_stop(signum: int, frame: Any) -> None:
    raise StopRequested(signal.Signals(signum).name)


SHARED_MAX_WAIT = 0.5
"""Seconds a job of a worker serving several sites waits at most for its site's rate-limit slot
(REACTOR_RATE_LIMIT_MAX_WAIT if lower) before it is deferred to when the slot frees: a site at its
limit then holds the worker for half a second per call, not REACTOR_RATE_LIMIT_MAX_WAIT, and the
other sites' jobs, taken in turn (round robin), are not held back by it."""


def site_settings(settings: Settings, names: tuple[str, ...] = ()) -> list[Settings]:
    """Settings scoped to each site a worker serves: `names`, or every configured site (the home
    site first). With more than one, a rate-limit wait is capped at SHARED_MAX_WAIT."""
    served = names or settings.site_names
    scoped = [settings.for_site(name) for name in dict.fromkeys(served)]
    if len(scoped) > 1:
        scoped = [replace(s, rate_limit_max_wait=min(s.rate_limit_max_wait, SHARED_MAX_WAIT)) for s in scoped]
    return scoped


def run_worker(
    settings: Settings,
    connection: redis.Redis,
    burst: bool = False,
    name: str | None = None,
    sites: tuple[str, ...] = (),
) -> bool:
    """Run the worker until it is told to stop (SIGTERM or SIGINT, at any moment). RQ's worker
    gives up when Redis goes away at the wrong moment (between jobs, or while recording a result);
    this loop waits for Redis to come back and starts a fresh worker, so a Redis restart does not
    need a person to restart the workers. A job cut off by the outage is recovered like any
    abandoned job.

    The worker listens on the queue of every site in `sites` (default: every configured site), each
    job run with its site's context (jobs/context.py); it takes the queues in turn (RQ's round-robin
    dequeue), so a burst on one site's queue does not starve another's."""
    raise_stop_on_signals()
    worked = False
    try:
        contexts = [jobs.build_context(scoped, connection) for scoped in site_settings(settings, sites)]
        contexts[0].rules.current()  # refuse to start on a broken rules file: say so now, not per job
        jobs.install(*contexts)
        for generation in itertools.count():
            worker = WORKER_CLASSES[settings.worker_class](
                [context.queue for context in contexts],
                connection=connection,
                name=f"{name}-{generation}" if name and generation else name,
                abandoned_after=settings.abandoned_after,
                job_monitoring_interval=settings.heartbeat_interval,
                maintenance_interval=settings.maintenance_interval,
            )
            try:
                worked = (
                    worker.work(with_scheduler=True, burst=burst, dequeue_strategy=DequeueStrategy.ROUND_ROBIN)
                    or worked
                )
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.error("worker stopped: Redis unreachable (%s)", exc)
            finally:
                raise_stop_on_signals()  # the worker's handlers act on a worker that has ended
            if burst or worker.signalled_to_stop:
                return worked
            # A pause before the first ping too: RQ may give up again at once on a Redis that answers
            # PING but little else (still starting, failing over), and each restart should wait longer.
            time.sleep(RESTART_BACKOFF.compute(generation))
            wait_for_redis(connection)
            log.warning("restarting the worker after it stopped on a Redis error")
    except StopRequested as stop:
        log.info("stopped on %s while no worker was running", stop)
    return worked
