--[[
  Reserves the next nonce of a lane for one write, before its transaction is signed (runtime/chains/lane.ts,
  reserve). The signature is made outside the lane lock and stored by commitReserved-2.lua; meanwhile the nonce is
  the write's (state 'reserved'), so the lock is held only for this step and the broadcast, not for the signature.

  Fenced: only the holder of the lane lock may reserve, so two processes never reserve one nonce. The lane's next
  nonce is raised to nonce + 1 when it was lower (never lowered).

    Input:
      KEYS[1] the lane lock, P:lane:{chainId:address}:lock (string: its holder's token)
      KEYS[2] the lane's next nonce to assign, …:next (string)
      KEYS[3] the nonce's transaction, …:tx:<nonce> (hash)
      KEYS[4] the nonce assigned to the write's idempotency key, …:idem:<key> (string)
      KEYS[5] the lane's nonces not yet confirmed, …:pending (sorted set, score = nonce)

      ARGV[1] token: the fencing token of the caller's lease
      ARGV[2] nonce (decimal)
      ARGV[3] key: the write's idempotency key
      ARGV[4] gasLimit, gas units (decimal): the transaction's gas limit, so that any process can sign it
      ARGV[5] reservedAt, Unix ms

    Output: nonce, the nonce reserved
      error 'LANE_LOCK_LOST'          ARGV[1] does not hold the lane lock (nothing written)
      error 'LANE_KEY_TAKEN <nonce>'  the key already has a nonce, <nonce> (nothing written)
      error 'LANE_NONCE_TAKEN'        the nonce is below the next nonce and its transaction is stored (nothing written)
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LANE_LOCK_LOST') end
local existing = redis.call('GET', KEYS[4])
if existing then return redis.error_reply('LANE_KEY_TAKEN ' .. existing) end
local nonce = tonumber(ARGV[2])
local nextNonce = tonumber(redis.call('GET', KEYS[2]) or '0')
if nonce < nextNonce and redis.call('EXISTS', KEYS[3]) == 1 then return redis.error_reply('LANE_NONCE_TAKEN') end
if nonce + 1 > nextNonce then redis.call('SET', KEYS[2], nonce + 1) end
redis.call('HSET', KEYS[3], 'key', ARGV[3], 'raw', '', 'hashes', '[]', 'gasLimit', ARGV[4], 'reservedAt', ARGV[5],
  'state', 'reserved')
redis.call('SET', KEYS[4], nonce)
redis.call('ZADD', KEYS[5], nonce, nonce)
return nonce
