--[[
  Stores the signatures of a closed anchor batch before its transaction is sent (runtime/chains/anchor.ts), so
  that whoever finishes the batch sends the same signed batch. Only a batch in state 'closed' moves to 'signed':
  one signed by another process meanwhile (or anchored, or gone) is left alone.

    Input:
      KEYS[1] the batch record, P:{anchor:<chain>}:batch:<seq> (hash)

      ARGV[1] root: the batch's Merkle root (0x hex)
      ARGV[2] timestamp, Unix seconds (decimal): the batch time, its close time
      ARGV[3] signatures: the ResultBatch signatures (JSON array)

    Output: 1 stored (state 'signed'), 0 the batch was not 'closed' (nothing written)
]]
if redis.call('HGET', KEYS[1], 'state') ~= 'closed' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'signed', 'root', ARGV[1], 'timestamp', ARGV[2], 'signatures', ARGV[3])
return 1
