--[[
  Records a replacement transaction of a lane's nonce: the same nonce signed again with new fees
  (runtime/chains/lane.ts, replace).

  Fenced by the lane lock. The new hash is appended to the nonce's hashes (every hash broadcast for it, oldest
  first, so a receipt of any of them is found); raw, fees and sentAt become the replacement's, firstSentAt and
  state are kept.

    Input:
      KEYS[1] the lane lock, P:lane:{chainId:address}:lock (string: its holder's token)
      KEYS[2] the nonce's transaction, …:tx:<nonce> (hash)

      ARGV[1] token: the fencing token of the caller's lease
      ARGV[2] raw: the signed raw replacement transaction (0x hex)
      ARGV[3] hash: its transaction hash (0x hex)
      ARGV[4] maxFeePerGas, wei (decimal)
      ARGV[5] maxPriorityFeePerGas, wei (decimal)
      ARGV[6] sentAt, Unix ms

    Output: the number of hashes the nonce now has
      error 'LANE_LOCK_LOST'  ARGV[1] does not hold the lane lock (nothing written)
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LANE_LOCK_LOST') end
local hashes = cjson.decode(redis.call('HGET', KEYS[2], 'hashes') or '[]')
table.insert(hashes, ARGV[3])
redis.call('HSET', KEYS[2], 'raw', ARGV[2], 'hashes', cjson.encode(hashes), 'maxFeePerGas', ARGV[4],
  'maxPriorityFeePerGas', ARGV[5], 'sentAt', ARGV[6])
return #hashes
