--[[
  Gives a stale reservation's nonce to a gap filler (runtime/chains/lane.ts, takeOverReservation): a write reserved
  the nonce (reserveNonce-5.lua) and has not stored its signed transaction since ARGV[2], so its process died or
  its write failed for good, and every later nonce of the lane waits for this one. The write's key is freed (a
  retry of the write reserves a new nonce) and the nonce carries a zero-value self-transfer instead.

  Fenced: only the holder of the lane lock may take a reservation over.

    Input:
      KEYS[1] the lane lock, P:lane:{chainId:address}:lock (string: its holder's token)
      KEYS[2] the nonce's transaction, …:tx:<nonce> (hash)
      KEYS[3] the nonce assigned to the reserving write's idempotency key, …:idem:<key> (string)
      KEYS[4] the nonce assigned to the filler's key, …:idem:filler:<nonce> (string)

      ARGV[1] token: the fencing token of the caller's lease
      ARGV[2] staleBefore, Unix ms: only a reservation made before it is taken over
      ARGV[3] nonce (decimal)
      ARGV[4] the filler's key, filler:<nonce>
      ARGV[5] raw: the filler's signed raw transaction (0x hex)
      ARGV[6] hash: its transaction hash (0x hex)
      ARGV[7] maxFeePerGas, wei (decimal)
      ARGV[8] maxPriorityFeePerGas, wei (decimal)
      ARGV[9] sentAt, Unix ms

    Output: 1 taken over; 0 not taken over (the nonce is not reserved any more, or its reservation is not stale)
      error 'LANE_LOCK_LOST'  ARGV[1] does not hold the lane lock (nothing written)
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LANE_LOCK_LOST') end
if redis.call('HGET', KEYS[2], 'state') ~= 'reserved' then return 0 end
if tonumber(redis.call('HGET', KEYS[2], 'reservedAt') or '0') >= tonumber(ARGV[2]) then return 0 end
if redis.call('GET', KEYS[3]) == ARGV[3] then redis.call('DEL', KEYS[3]) end
redis.call('HSET', KEYS[2], 'key', ARGV[4], 'raw', ARGV[5], 'hashes', cjson.encode({ARGV[6]}), 'maxFeePerGas', ARGV[7],
  'maxPriorityFeePerGas', ARGV[8], 'sentAt', ARGV[9], 'firstSentAt', ARGV[9], 'state', 'filler')
redis.call('HDEL', KEYS[2], 'gasLimit', 'reservedAt')
redis.call('SET', KEYS[4], ARGV[3])
return 1
