--[[
  Releases the scan lock of a trigger subscription if the caller holds it (runtime/triggers/TriggerStore.ts,
  unlock). A lock that is gone or held by another listener is left alone.

    Input:
      KEYS[1] the subscription's scan lock, <prefix>:triggers:{<subscription>}:lock (string: the holder's token)

      ARGV[1] token: the listener's token

    Output: 1 released, 0 not held by ARGV[1] (nothing done)
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0
