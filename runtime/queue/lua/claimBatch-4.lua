--[[
  Claims the runs of one generation of a package's micro-batch queue for its `batches` job
  (runtime/queue/microBatch.ts), and opens the next generation.

  The first call of a generation's job takes the oldest pending runs (at most ARGV[2]) into that generation's
  claimed set and moves the open generation on; every later call (the job retried, or taken over after its worker
  died) returns the same set. A generation already claimed whose set is gone (finished and deleted, or expired)
  claims nothing. Runs that join while a job works belong to the next generation, whose job the caller adds when
  `remaining` is not 0.

    Input:
      KEYS[1] the open generation (string, integer; absent = 0)
      KEYS[2] pending runs (sorted set: member resultId, score the join time, Unix ms)
      KEYS[3] pending entries (hash: resultId -> the run's entry, JSON)
      KEYS[4] this generation's claimed runs (hash: resultId -> entry; field "#" marks the claim, value its size)

      ARGV[1] this job's generation
      ARGV[2] the most runs a batch claims
      ARGV[3] how long the claimed set is kept, seconds (the deployment's retention)

    Output: { remaining, resultId1, entry1, resultId2, entry2, … }
      remaining  runs still pending after this claim (their job is the next generation's)
]]
local rcall = redis.call
local out = { 0 }
if rcall("EXISTS", KEYS[4]) == 1 then
  out[1] = rcall("ZCARD", KEYS[2])
  local claimed = rcall("HGETALL", KEYS[4])
  for i = 1, #claimed, 2 do
    if claimed[i] ~= "#" then
      out[#out + 1] = claimed[i]
      out[#out + 1] = claimed[i + 1]
    end
  end
  return out
end
local generation = tonumber(rcall("GET", KEYS[1]) or "0")
if tonumber(ARGV[1]) ~= generation then
  out[1] = rcall("ZCARD", KEYS[2])
  return out
end
local ids = rcall("ZRANGE", KEYS[2], 0, tonumber(ARGV[2]) - 1)
rcall("SET", KEYS[1], generation + 1)
rcall("HSET", KEYS[4], "#", #ids)
for _, id in ipairs(ids) do
  local entry = rcall("HGET", KEYS[3], id)
  if entry then
    rcall("HSET", KEYS[4], id, entry)
    out[#out + 1] = id
    out[#out + 1] = entry
  end
  rcall("HDEL", KEYS[3], id)
  rcall("ZREM", KEYS[2], id)
end
rcall("EXPIRE", KEYS[4], tonumber(ARGV[3]))
out[1] = rcall("ZCARD", KEYS[2])
return out
