--[[
  Takes or renews the scan lock of a trigger subscription (runtime/triggers/TriggerStore.ts, lock): one listener
  at a time scans a subscription. A lock that is free is taken; one the caller holds is renewed; one another
  listener holds is left alone.

    Input:
      KEYS[1] the subscription's scan lock, <prefix>:triggers:{<subscription>}:lock (string: the holder's token)

      ARGV[1] token: the listener's token
      ARGV[2] ttl, ms: the lock's time to live from now

    Output: 1 taken or renewed, 0 held by another listener (nothing done)
]]
local current = redis.call('GET', KEYS[1])
if current == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if current == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
