-- KEYS: hash, exp. ARGV: user, now_us, device, activity ('o', 'a', or '' to keep the last
-- report), now_ms, expires_ms. Returns {before, after} (HGETALL), or false when unseeded.
local hash, exp = KEYS[1], KEYS[2]
if not seeded(hash) then
  return false
end
local before = redis.call('HGETALL', hash)
local field = 'd:' .. ARGV[3]
local activity = ARGV[4]
if activity == '' then
  local entry = redis.call('HGET', hash, field)
  activity = entry and string.sub(entry, 1, 1) or 'o'
end
redis.call('HSET', hash, field, activity .. '|' .. ARGV[6])
redis.call('ZADD', exp, ARGV[6], device_member(ARGV[1], ARGV[3]))
-- INVISIBLE freezes last_seen.
local manual = redis.call('HGET', hash, 'm')
if not (manual and string.sub(manual, 1, 1) == 'i') then
  redis.call('HSET', hash, 'ls', ARGV[5])
end
bump(hash, ARGV[2])
touch(hash, exp)
return {before, redis.call('HGETALL', hash)}
