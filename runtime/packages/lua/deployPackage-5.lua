--[[
  Stores one deployed package version atomically (runtime/packages/PackageStore.ts, deploy): of two concurrent
  deploys of one name@version with different bytes exactly one wins. Versions are immutable: a version already
  stored is never overwritten. The package's bytes are stored under their codeHash only when that hash is not
  stored yet (a codeHash names its bytes for ever).

  Every key starts with the store's prefix P (default {cryptlet-packages}:), whose hash tag keeps them in one
  Redis Cluster slot.

    Input:
      KEYS[1] the version record, P version:<name>@<version> (hash: codeHash, signature, kid, deployedAt, name, version)
      KEYS[2] the package's bytes, P code:<codeHash> (hash: manifest, file:<path> per file)
      KEYS[3] the deployed versions of the name, P versions:<name> (set)
      KEYS[4] every deployed package name, P names (set)
      KEYS[5] the package name of a Cryptlet id, P id:<cryptletId> (string)

      ARGV[1] codeHash (lowercase 0x hex), recomputed from the bytes
      ARGV[2] signature: the publisher's compact JWS
      ARGV[3] kid: the trusted publisher key that signed it
      ARGV[4] deployedAt, Unix ms
      ARGV[5] name
      ARGV[6] version
      ARGV[7] the normalised manifest (RFC 8785 JSON)
      ARGV[8] n: the number of files
      ARGV[9], ARGV[10], ... ARGV[7 + 2n], ARGV[8 + 2n]: n pairs of a file's path and its bytes

    Output: { status, codeHash }
      {  1, ARGV[1] }   stored now
      {  0, ARGV[1] }   already stored with the same codeHash (idempotent: nothing written)
      { -1, existing }  a conflict: name@version is stored with another codeHash, existing (nothing written)
]]
local existing = redis.call('HGET', KEYS[1], 'codeHash')
if existing then
  if existing == ARGV[1] then return {0, existing} end
  return {-1, existing}
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  local fields = {'manifest', ARGV[7]}
  local n = tonumber(ARGV[8])
  for i = 1, n do
    fields[#fields + 1] = 'file:' .. ARGV[7 + 2 * i]
    fields[#fields + 1] = ARGV[8 + 2 * i]
  end
  redis.call('HSET', KEYS[2], unpack(fields))
end
redis.call('HSET', KEYS[1], 'codeHash', ARGV[1], 'signature', ARGV[2], 'kid', ARGV[3], 'deployedAt', ARGV[4],
  'name', ARGV[5], 'version', ARGV[6])
redis.call('SADD', KEYS[3], ARGV[6])
redis.call('SADD', KEYS[4], ARGV[5])
redis.call('SET', KEYS[5], ARGV[5])
return {1, ARGV[1]}
