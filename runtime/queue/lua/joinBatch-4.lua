--[[
  Adds a run to its package's micro-batch queue (runtime/queue/microBatch.ts), once.

  The queue has generations 0, 1, 2, …: the open generation is the one the next `batches` job claims. A run that
  joins is pending until a job claims it; the caller then makes sure the job of the returned generation exists
  (its id derives from the generation, so adding it twice is a no-op). A run already joined (the same event
  accepted again, e.g. after a crash between this script and the job's creation) is not added again, and the
  current generation is returned so that the caller still makes sure its job exists.

    Input:
      KEYS[1] the open generation (string, integer; absent = 0)
      KEYS[2] pending runs (sorted set: member resultId, score the join time, Unix ms)
      KEYS[3] pending entries (hash: resultId -> the run's entry, JSON)
      KEYS[4] joined runs not yet settled (hash: resultId -> the generation open when it joined)

      ARGV[1] resultId (lowercase 0x hex)
      ARGV[2] the run's entry (JSON: its execute and attest payloads; a sealed Cryptlet's input stays encrypted)
      ARGV[3] now, Unix ms

    Output: { joined, generation }
      joined      1 added, 0 already joined (a duplicate)
      generation  the open generation
]]
local rcall = redis.call
local generation = tonumber(rcall("GET", KEYS[1]) or "0")
if rcall("HEXISTS", KEYS[4], ARGV[1]) == 1 then
  return { 0, generation }
end
rcall("ZADD", KEYS[2], ARGV[3], ARGV[1])
rcall("HSET", KEYS[3], ARGV[1], ARGV[2])
rcall("HSET", KEYS[4], ARGV[1], generation)
return { 1, generation }
