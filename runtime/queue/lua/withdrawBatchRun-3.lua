--[[
  Withdraws a run from its package's micro-batch queue while no job has claimed it (runtime/queue/microBatch.ts):
  a trigger cancelling the run of a log that a reorg removed (runtime/triggers/cancelRun.ts). A claimed run is in
  a job's hands and is not withdrawn.

    Input:
      KEYS[1] pending runs (sorted set: member resultId)
      KEYS[2] pending entries (hash: resultId -> entry)
      KEYS[3] joined runs not yet settled (hash: resultId -> generation)

      ARGV[1] resultId (lowercase 0x hex)

    Output:
       1 withdrawn: it was pending, and is gone from the queue
       0 not withdrawn: a job has claimed it
      -1 not in the queue (never joined, or settled)
]]
local rcall = redis.call
if rcall("ZREM", KEYS[1], ARGV[1]) == 1 then
  rcall("HDEL", KEYS[2], ARGV[1])
  rcall("HDEL", KEYS[3], ARGV[1])
  return 1
end
if rcall("HEXISTS", KEYS[3], ARGV[1]) == 1 then
  return 0
end
return -1
