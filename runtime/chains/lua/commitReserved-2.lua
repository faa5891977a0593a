--[[
  Stores the signed transaction of a reserved nonce (runtime/chains/lane.ts, commitReserved): the reservation
  made by reserveNonce-5.lua becomes a pending transaction, ready to broadcast.

  Not fenced by the lane lock: the reservation is the fence. Any process may complete a reservation (the one that
  made it, or the retry of its write after a crash); the first completion wins, and a later one, or one after the
  reservation was taken over by a gap filler (takeOverReservation-4.lua) or its nonce was consumed outside the lane
  (reassignKey-4.lua), changes nothing.

    Input:
      KEYS[1] the nonce's transaction, P:lane:{chainId:address}:tx:<nonce> (hash)
      KEYS[2] the nonce assigned to the write's idempotency key, …:idem:<key> (string)

      ARGV[1] nonce (decimal)
      ARGV[2] key: the write's idempotency key
      ARGV[3] raw: the signed raw transaction (0x hex)
      ARGV[4] hash: its transaction hash (0x hex), the first of the nonce's hashes
      ARGV[5] maxFeePerGas, wei (decimal)
      ARGV[6] maxPriorityFeePerGas, wei (decimal)
      ARGV[7] sentAt, Unix ms (also stored as firstSentAt)

    Output: nonce, the nonce committed
      error 'LANE_RESERVATION_LOST <state>'  the nonce is not reserved for this key any more (<state>: the nonce's
                                             state now, or 'none'); nothing written
]]
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'reserved' or redis.call('HGET', KEYS[1], 'key') ~= ARGV[2] or redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('LANE_RESERVATION_LOST ' .. (state or 'none'))
end
redis.call('HSET', KEYS[1], 'raw', ARGV[3], 'hashes', cjson.encode({ARGV[4]}), 'maxFeePerGas', ARGV[5],
  'maxPriorityFeePerGas', ARGV[6], 'sentAt', ARGV[7], 'firstSentAt', ARGV[7], 'state', 'pending')
return tonumber(ARGV[1])
