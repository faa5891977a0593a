--[[
  Extends a lease lock held by the caller: a lane lock (runtime/chains/lane.ts) or an anchor batch lock
  (runtime/chains/anchor.ts), renewed every third of its lease while held. A lock that is gone or held by another
  token is left alone: the lease was lost, which the holder learns at its next fenced write.

    Input:
      KEYS[1] the lock: P:lane:{chainId:address}:lock or P:{anchor:<chain>}:batch:<seq>:lock
              (string: its holder's token, PX TTL)

      ARGV[1] token: the caller's lease token
      ARGV[2] lease, ms: the lock's new time to live

    Output: 1 extended, 0 not held by ARGV[1] (nothing done)
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0
