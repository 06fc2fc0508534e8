-- KEYS: hash, exp. ARGV: user, now_us, manual ('<status>|<clears_ms or empty>', or '' for
-- none), clears_ms (or ''). Returns {before, after}, or false when unseeded.
local hash, exp = KEYS[1], KEYS[2]
if not seeded(hash) then
  return false
end
local before = redis.call('HGETALL', hash)
local member = manual_member(ARGV[1])
redis.call('ZREM', exp, member)
if ARGV[3] == '' then
  redis.call('HDEL', hash, 'm')
else
  redis.call('HSET', hash, 'm', ARGV[3])
end
if ARGV[4] ~= '' then
  redis.call('ZADD', exp, ARGV[4], member)
end
bump(hash, ARGV[2])
touch(hash, exp)
return {before, redis.call('HGETALL', hash)}
