--[[
  Commits a nonce of a lane to one write, together with its signed transaction (runtime/chains/lane.ts, commit).
  The chain writer uses it for gap fillers; its writes reserve a nonce first (reserveNonce-5.lua) and store the
  signed transaction afterwards (commitReserved-2.lua).

  Fenced: only the holder of the lane lock may commit, so a process that lost its lease cannot assign a nonce
  twice. Signing and committing are one step for the lane's state: a crash between them leaves no hole.
  The lane's next nonce is raised to nonce + 1 when it was lower (never lowered).

    Input:
      KEYS[1] the lane lock, P:lane:{chainId:address}:lock (string: its holder's token)
      KEYS[2] the lane's next nonce to assign, …:next (string)
      KEYS[3] the nonce's transaction, …:tx:<nonce> (hash)
      KEYS[4] the nonce assigned to the write's idempotency key, …:idem:<key> (string)
      KEYS[5] the lane's nonces not yet confirmed, …:pending (sorted set, score = nonce)

      ARGV[1] token: the fencing token of the caller's lease
      ARGV[2] nonce (decimal)
      ARGV[3] key: the write's idempotency key (filler:<nonce> for a gap filler)
      ARGV[4] raw: the signed raw transaction (0x hex)
      ARGV[5] hash: its transaction hash (0x hex), the first of the nonce's hashes
      ARGV[6] maxFeePerGas, wei (decimal)
      ARGV[7] maxPriorityFeePerGas, wei (decimal)
      ARGV[8] sentAt, Unix ms (also stored as firstSentAt)
      ARGV[9] state: pending (a write) or filler (a gap filler)

    Output: nonce, the nonce committed
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
redis.call('HSET', KEYS[3], 'key', ARGV[3], 'raw', ARGV[4], 'hashes', cjson.encode({ARGV[5]}), 'maxFeePerGas', ARGV[6],
  'maxPriorityFeePerGas', ARGV[7], 'sentAt', ARGV[8], 'firstSentAt', ARGV[8], 'state', ARGV[9])
redis.call('SET', KEYS[4], nonce)
redis.call('ZADD', KEYS[5], nonce, nonce)
return nonce
