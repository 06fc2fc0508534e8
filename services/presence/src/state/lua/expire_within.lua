-- KEYS: hash, exp. ARGV: user, now_us (unused), device, latest_ms. Shortens the device's
-- expiry to latest_ms, never lengthens it; nothing when the device has no entry. Not a
-- version change (as memory.rs): observers see the same until the sweeper removes the entry.
local hash, exp = KEYS[1], KEYS[2]
local field = 'd:' .. ARGV[3]
local entry = redis.call('HGET', hash, field)
if not entry then
  return 0
end
local expires = tonumber(string.sub(entry, 3))
if expires > tonumber(ARGV[4]) then
  redis.call('HSET', hash, field, string.sub(entry, 1, 2) .. ARGV[4])
  redis.call('ZADD', exp, ARGV[4], device_member(ARGV[1], ARGV[3]))
  touch(hash, exp)
end
return 0
