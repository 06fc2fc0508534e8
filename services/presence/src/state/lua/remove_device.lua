-- KEYS: hash, exp. ARGV: user, now_us, device. Returns {before, after}, or false when
-- unseeded (nothing to remove).
local hash, exp = KEYS[1], KEYS[2]
if not seeded(hash) then
  return false
end
local before = redis.call('HGETALL', hash)
redis.call('HDEL', hash, 'd:' .. ARGV[3])
redis.call('ZREM', exp, device_member(ARGV[1], ARGV[3]))
bump(hash, ARGV[2])
touch(hash, exp)
return {before, redis.call('HGETALL', hash)}
