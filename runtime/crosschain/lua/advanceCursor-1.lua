--[[
  Advances the cross-chain deadline watcher's cursor of one lockbox (runtime/crosschain/deadlineWatcher.ts): the
  lowest lock nonce that may still be pending. The cursor only moves up: a watcher that read the locks earlier
  and proposes a lower value (a slower watcher in another process) leaves the higher one in place, so no lock
  below the stored cursor is ever read again and none above it is skipped.

    Input:
      KEYS[1] the cursor (a string holding a decimal integer; absent: 0)

      ARGV[1] the proposed cursor, a decimal integer >= 0 (below 2^53)

    Output: the cursor after the call, the larger of the stored and the proposed value (an integer)
]]
local rcall = redis.call
local current = tonumber(rcall("GET", KEYS[1]) or "0") or 0
local proposed = tonumber(ARGV[1])
if proposed ~= nil and proposed > current then
  rcall("SET", KEYS[1], ARGV[1])
  return proposed
end
return current
