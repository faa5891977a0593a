--[[
  Admits a run into the pipeline's backlog, or refuses it because a bound is reached (runtime/queue/backlog.ts).

  The backlog is the set of runs in flight: accepted by Pipeline.submit and not yet complete or failed for good.
  Each run is a member of two sorted sets (score: admission time, Unix ms): every run, and its Cryptlet's runs.
  A run already in the set is a duplicate submission (the same event again): admitted without counting twice.

    Input:
      KEYS[1] every run in flight (sorted set)
      KEYS[2] the run's Cryptlet's runs in flight (sorted set)

      ARGV[1] runId (the resultId, lowercase 0x hex)
      ARGV[2] now, Unix ms
      ARGV[3] maxRuns: the bound over every Cryptlet, in runs
      ARGV[4] maxRunsPerCryptlet: the bound per Cryptlet, in runs
      ARGV[5] staleBefore, Unix ms: members admitted before it are dropped first (runs whose release was lost,
              e.g. a process that died between a run's end and its release; a safety net, not the normal path)

    Output: { verdict, runs in flight overall, runs in flight for the Cryptlet }
      verdict  1 admitted (counted)
               2 admitted, already in flight (a duplicate: not counted again)
               0 refused, the overall bound is reached
              -1 refused, the Cryptlet's bound is reached
]]
local rcall = redis.call
rcall("ZREMRANGEBYSCORE", KEYS[1], "-inf", "(" .. ARGV[5])
rcall("ZREMRANGEBYSCORE", KEYS[2], "-inf", "(" .. ARGV[5])
local total = rcall("ZCARD", KEYS[1])
local mine = rcall("ZCARD", KEYS[2])
if rcall("ZSCORE", KEYS[1], ARGV[1]) then
  return { 2, total, mine }
end
if total >= tonumber(ARGV[3]) then
  return { 0, total, mine }
end
if mine >= tonumber(ARGV[4]) then
  return { -1, total, mine }
end
rcall("ZADD", KEYS[1], ARGV[2], ARGV[1])
rcall("ZADD", KEYS[2], ARGV[2], ARGV[1])
return { 1, total + 1, mine + 1 }
