--[[
  Moves an idempotency key off a nonce that something else consumed (runtime/chains/lane.ts, reassign): the
  nonce's transaction is marked failed and expires after the retention, the key's nonce is forgotten (the write
  gets a new nonce) and the nonce is no longer pending.

  Fenced by the lane lock.

    Input:
      KEYS[1] the lane lock, P:lane:{chainId:address}:lock (string: its holder's token)
      KEYS[2] the nonce's transaction, …:tx:<nonce> (hash)
      KEYS[3] the nonce assigned to the write's idempotency key, …:idem:<key> (string)
      KEYS[4] the lane's nonces not yet confirmed, …:pending (sorted set, score = nonce)

      ARGV[1] token: the fencing token of the caller's lease
      ARGV[2] nonce (decimal)
      ARGV[3] retention, seconds: how long the failed transaction's record is kept

    Output: 1
      error 'LANE_LOCK_LOST'  ARGV[1] does not hold the lane lock (nothing written)
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LANE_LOCK_LOST') end
redis.call('HSET', KEYS[2], 'state', 'failed')
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[2])
return 1
