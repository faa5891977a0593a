--[[
  Queues one result for anchoring on a chain (runtime/chains/anchor.ts, enqueueMany: one call per result,
  pipelined). Idempotent per result id: the digest index remembers every result enqueued until its batch is
  retired, so a result enqueued again (queued, batched or anchored) is a duplicate and never enters a second
  batch, and a different result with the same id is a conflict.

    Input:
      KEYS[1] result id → SHA-256 of the result's JSON, P:{anchor:<chain>}:digest (hash; the "enqueued once" index)
      KEYS[2] the queued result ids, …:pending (sorted set, score = enqueue time, Unix ms)
      KEYS[3] result id → the queued result, …:results (hash: JSON, bundle form)

      ARGV[1] resultId (lowercase 0x hex)
      ARGV[2] digest: SHA-256 of ARGV[3] (base64)
      ARGV[3] the result's JSON (bundle form)
      ARGV[4] now, Unix ms

    Output:
       1 queued
       0 a duplicate: enqueued before with the same digest (nothing written)
      -1 a conflict: enqueued before with another digest (nothing written)
]]
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  if existing == ARGV[2] then return 0 end
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 1
