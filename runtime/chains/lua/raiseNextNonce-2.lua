--[[
  Raises a lane's next nonce to at least a given nonce, after the chain shows nonces used outside the lane
  (runtime/chains/lane.ts, raiseNextNonce). Never lowers it.

  Fenced by the lane lock.

    Input:
      KEYS[1] the lane lock, P:lane:{chainId:address}:lock (string: its holder's token)
      KEYS[2] the lane's next nonce to assign, …:next (string)

      ARGV[1] token: the fencing token of the caller's lease
      ARGV[2] nonce (decimal): the lowest next nonce the lane may have

    Output: 1 (whether or not the next nonce was raised)
      error 'LANE_LOCK_LOST'  ARGV[1] does not hold the lane lock (nothing written)
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LANE_LOCK_LOST') end
if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
return 1
