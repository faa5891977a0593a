--[[
  Closes the anchor batches of a chain that are due (runtime/chains/anchor.ts, close): while at least one result
  is queued, moves up to maxSize of them, oldest first, into a new batch with the next sequence number. A batch
  with fewer than maxSize results is closed only when its oldest result has waited maxDelay, or with force.
  Results leave the queue in the step that puts them in a batch, so a result is in at most one batch.

  Each batch gets a record P:{anchor:<chain>}:batch:<seq> (hash: state 'closed', closedAt (Unix ms), count,
  attempt 0, failures 0) and a list P:{anchor:<chain>}:batch:<seq>:results (the results' JSON, in queue order).
  These two keys are built from ARGV[5], not passed in KEYS (their names hold the sequence number this script
  assigns); ARGV[5] carries the chain's {anchor:<chain>} hash tag, so they share the slot of KEYS on a Redis Cluster.
  A queued id whose JSON is missing leaves the queue without entering the list (count is the list's length).

    Input:
      KEYS[1] the queued result ids, P:{anchor:<chain>}:pending (sorted set, score = enqueue time, Unix ms)
      KEYS[2] result id → the queued result, …:results (hash: JSON, bundle form)
      KEYS[3] the last batch sequence number, …:seq (string)
      KEYS[4] the closed batches not yet anchored, …:open (sorted set, member and score = seq)

      ARGV[1] now, Unix ms
      ARGV[2] maxSize: the most results in one batch, in results
      ARGV[3] maxDelay, ms: how long the oldest queued result may wait for a full batch
      ARGV[4] force: '1' closes a partial batch at once, '0' waits maxDelay
      ARGV[5] batchPrefix: the batch record's key without its sequence number, P:{anchor:<chain>}:batch:
      ARGV[6] maxBatches: the most batches closed by this call, in batches (bounds the script's run time)

    Output: { seq, ... } the sequence numbers of the batches closed, ascending; empty when none was due
]]
local closed = {}
local now = tonumber(ARGV[1])
local size = tonumber(ARGV[2])
while #closed < tonumber(ARGV[6]) do
  local n = redis.call('ZCARD', KEYS[1])
  if n == 0 then break end
  if n < size and ARGV[4] ~= '1' then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    if now - tonumber(oldest[2]) < tonumber(ARGV[3]) then break end
  end
  local ids = redis.call('ZRANGE', KEYS[1], 0, size - 1)
  local seq = redis.call('INCR', KEYS[3])
  local list = ARGV[5] .. seq .. ':results'
  local count = 0
  for _, id in ipairs(ids) do
    local json = redis.call('HGET', KEYS[2], id)
    if json then
      redis.call('RPUSH', list, json)
      count = count + 1
    end
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[1], id)
  end
  redis.call('HSET', ARGV[5] .. seq, 'state', 'closed', 'closedAt', now, 'count', count, 'attempt', 0, 'failures', 0)
  redis.call('ZADD', KEYS[4], seq, seq)
  table.insert(closed, seq)
end
return closed
