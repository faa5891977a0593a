--[[
  Releases a lease lock held by the caller: a lane lock (runtime/chains/lane.ts) or an anchor batch lock
  (runtime/chains/anchor.ts). A lock that is gone or held by another token (the lease was lost and taken since)
  is left alone.

    Input:
      KEYS[1] the lock: P:lane:{chainId:address}:lock or P:{anchor:<chain>}:batch:<seq>:lock
              (string: its holder's token, PX TTL)

      ARGV[1] token: the caller's lease token

    Output: 1 released, 0 not held by ARGV[1] (nothing done)
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
