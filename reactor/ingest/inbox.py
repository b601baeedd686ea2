"""The inbox: accepted events waiting to be triaged in batches (`REACTOR_TRIAGE`, on by default).

The webhook appends the event id to a Redis list; a triage job (reactor/jobs/triage.py) takes ids a
batch at a time, decides each, records what needs nothing from Chargebee, and hands every other event
to its own evaluation job. Claiming and waking are Lua scripts, which Redis runs alone, so that no
interleaving of the webhook and triage jobs leaves an event in the inbox with no job on its way to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from ..keys import Keys

# Why: most events of a dunning run match no write_off rule, and deciding one takes microseconds; an
# RQ job per event costs some sixty Redis commands and, with the forking worker, a fork
# (docs/benchmarks.md, "Drain").
#
# Three keys hold the inbox (reactor/keys.py):
# - `{p}:inbox`, a list of event ids, appended to by the accept script (reactor/ingest/events.py);
# - `{p}:inbox:claimed`, a sorted set of the ids a triage job took, scored by the end of its lease,
#   and `{p}:inbox:claims:<job id>`, the same ids by the job that took them. An id leaves them only
#   once its event was recorded or handed to its own job; a triage job that dies or raises leaves
#   its ids there, and the next attempt of the same job (RQ's retry, or the recovery of an abandoned
#   job), or any triage job once their lease ends, takes them again and hands them, undecided, to
#   jobs of their own (never triaging twice what may have stopped a job);
# - `{p}:inbox:drainer`, set while a triage job is queued or running, for a lease's length: the
#   accept script enqueues a triage job only when it sets this key, so a burst wakes one job, not
#   one per event. A claim that finds nothing deletes it, in the same script, so an event appended
#   after that wakes a new job. Workers' maintenance wakes one for an inbox that has events and no
#   triage job queued, started or scheduled (one lost with a failed-over primary, or dead-lettered),
#   whatever the mark says (_WAKE); and so does a triage job that stops with work left.

# KEYS[1] the inbox, KEYS[2] the claimed set, KEYS[3] the drainer mark, KEYS[4] the claiming job's
# own claims; ARGV[1] now, ARGV[2] the end of the new lease, ARGV[3] how many ids at most, ARGV[4]
# the drainer mark's TTL, ARGV[5] 1 when KEYS[4] is a job's. Returns the ids taken again (claimed
# by an earlier attempt of this job, or with their lease ended) and the ids newly taken.
_CLAIM = """
local limit = tonumber(ARGV[3])
local retaken, seen = {}, {}
if ARGV[5] == '1' then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    if #retaken < limit and redis.call('ZSCORE', KEYS[2], id) then
      table.insert(retaken, id)
      seen[id] = true
    end
  end
  redis.call('DEL', KEYS[4])
end
if #retaken < limit then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, limit)) do
    if #retaken < limit and not seen[id] then table.insert(retaken, id) end
  end
end
local fresh = {}
if #retaken < limit then
  fresh = redis.call('LPOP', KEYS[1], limit - #retaken) or {}
end
if #retaken == 0 and #fresh == 0 then
  redis.call('DEL', KEYS[3])
  return {{}, {}}
end
for _, id in ipairs(retaken) do redis.call('ZADD', KEYS[2], ARGV[2], id) end
for _, id in ipairs(fresh) do redis.call('ZADD', KEYS[2], ARGV[2], id) end
if ARGV[5] == '1' then
  for _, id in ipairs(retaken) do redis.call('SADD', KEYS[4], id) end
  for _, id in ipairs(fresh) do redis.call('SADD', KEYS[4], id) end
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
redis.call('SET', KEYS[3], '1', 'EX', ARGV[4])
return {retaken, fresh}
"""

# KEYS as for _CLAIM; ARGV[1] now, ARGV[2] the drainer mark's TTL. 1 (and the mark set): events
# wait, the caller is to enqueue a triage job; 0: nothing waits.
_WAKE = """
if redis.call('LLEN', KEYS[1]) == 0
   and #redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1) == 0 then
  return 0
end
redis.call('SET', KEYS[3], '1', 'EX', ARGV[2])
return 1
"""


TRIAGE_JOB_TIMEOUT = 60
"""RQ's timeout for a triage job, which claims new batches for 5 s and decides each in milliseconds."""
LEASE = TRIAGE_JOB_TIMEOUT + 90
"""Seconds a claimed id stays with its triage job: longer than the job may run (its timeout, and the
minute more RQ gives a forking worker's work horse before it kills it, and then some), so that an id
is taken again only from a job that is gone."""


@dataclass(frozen=True)
class Claim:
    """Ids taken from the inbox: `retaken` were claimed before by a triage job that did not finish
    them; `fresh` come from the inbox for the first time."""

    retaken: list[str]
    fresh: list[str]

    def __bool__(self) -> bool:
        return bool(self.retaken or self.fresh)

    @property
    def ids(self) -> list[str]:
        return [*self.retaken, *self.fresh]


@dataclass(frozen=True)
class InboxDepth:
    waiting: int
    claimed: int


class Inbox:
    """The inbox's Redis structure; `lease`: how long a claimed id stays with its triage job (LEASE)."""

    def __init__(self, connection: redis.Redis, keys: Keys, lease: int = LEASE):
        self.redis = connection
        self.keys = keys
        self.lease = lease
        self._keys = [keys.inbox(), keys.inbox_claimed(), keys.inbox_drainer()]
        self._claim = connection.register_script(_CLAIM)
        self._wake = connection.register_script(_WAKE)

    def claim(self, limit: int, now: float, owner: str | None = None) -> Claim:
        """Up to `limit` ids. `owner`, the triage job's id (RQ keeps it across the job's retries and
        the recovery of an abandoned job), also takes again at once what an earlier attempt of the
        same job claimed and did not finish, instead of waiting for the lease to end."""
        keys = [*self._keys, self.keys.inbox_claims(owner or "-")]
        args = [now, now + self.lease, limit, self.lease, 1 if owner else 0]
        retaken, fresh = self._claim(keys=keys, args=args)
        return Claim([_text(i) for i in retaken], [_text(i) for i in fresh])

    def finish(self, ids: Sequence[str], owner: str | None = None) -> None:
        """The events were recorded or handed to their own jobs: release their claims."""
        with self.redis.pipeline(transaction=True) as pipe:
            if ids:
                pipe.zrem(self.keys.inbox_claimed(), *ids)
            if owner:
                pipe.delete(self.keys.inbox_claims(owner))
            pipe.execute()

    def needs_drainer(self, now: float) -> bool:
        """True (and the drainer mark set) when events wait: in the inbox, or claimed by a triage
        job whose lease has ended. For a caller that found no triage job on its way (workers'
        maintenance): the mark may outlive a job that was lost (its writes gone with a failed-over
        primary, a job dead-lettered), so it is not what decides; the caller enqueues one."""
        return bool(self._wake(keys=self._keys, args=[now, self.lease]))

    def release_drainer(self) -> None:
        """Undo `needs_drainer` when the triage job could not be enqueued."""
        self.redis.delete(self.keys.inbox_drainer())

    def depth(self) -> InboxDepth:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.llen(self.keys.inbox())
            pipe.zcard(self.keys.inbox_claimed())
            waiting, claimed = pipe.execute()
        return InboxDepth(int(waiting), int(claimed))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
