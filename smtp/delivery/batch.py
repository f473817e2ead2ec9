"""Batching: a deliver job also takes the deliver jobs waiting behind it in the queue, so one job delivers
up to DELIVERY_BATCH messages with one claim query, one load query and one round of RQ's bookkeeping.

The jobs taken are popped from the queue and their job hashes deleted in one Lua script, so a worker that
dies before it claimed them leaves no job behind that claims to be waiting: the reconciler (recovery.py)
finds those messages due without a job and enqueues them again. Once claimed, each message's lease is
the guard, exactly as for a message delivered by its own job.
"""

from __future__ import annotations

from rq import Queue
from rq.job import Job

from mailferry.queue import job_id_for
from smtp.routing.limits import DomainLimiter, Grant

JOB_PREFIX = job_id_for("")

# Pops up to ARGV[2] deliver job ids from the head of the queue list (stopping at the first other job) and
# deletes their job hashes, atomically.
_TAKE = """
local taken = {}
local n = tonumber(ARGV[2])
while #taken < n do
  local id = redis.call('LINDEX', KEYS[1], 0)
  if not id or string.sub(id, 1, #ARGV[3]) ~= ARGV[3] then break end
  redis.call('LPOP', KEYS[1])
  redis.call('DEL', ARGV[1] .. id)
  taken[#taken + 1] = id
end
return taken
"""


def take_waiting(queue: Queue, limit: int) -> list[str]:
    """Message ids of up to `limit` deliver jobs waiting at the head of the queue, taken off it."""
    if limit <= 0:
        return []
    ids = queue.connection.eval(_TAKE, 1, queue.key, Job.redis_job_namespace_prefix, limit, JOB_PREFIX)
    return [(i.decode() if isinstance(i, bytes) else i)[len(JOB_PREFIX):] for i in ids]


class HeldSlots(DomainLimiter):
    """The per-domain limiter as one batch sees it: a concurrency slot granted for a domain is kept until the
    batch ends (its connection stays open, parked, between the batch's messages), so the next message to the
    same domain costs no Redis round trip; a refusal is not kept, the next message asks again."""

    def __init__(self, limiter: DomainLimiter):
        super().__init__(limiter.redis, limiter.max_connections, limiter.per_minute, limiter.slot_ttl, limiter.prefix)
        self.held: dict[str, Grant] = {}

    def acquire(self, domain: str, now: float | None = None, new_connection: bool = True) -> Grant:
        if domain in self.held:
            return self.held[domain]
        grant = super().acquire(domain, now, new_connection=new_connection)
        if grant.granted:
            self.held[domain] = grant
        return grant

    def release(self, domain: str, grant: Grant) -> None:
        if self.held.get(domain) is not grant:
            super().release(domain, grant)

    def close(self) -> None:
        """Release every slot held (one Redis failing leaves its slot to expire after slot_ttl)."""
        while self.held:
            super().release(*self.held.popitem())
