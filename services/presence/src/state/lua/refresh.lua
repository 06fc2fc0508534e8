-- KEYS: hash, exp. ARGV: user, now_us, device, activity ('o', 'a', or '' to keep the last
-- report), now_ms, expires_ms. Returns {before, after} (HGETALL), or false when unseeded.
local hash, exp = KEYS[1], KEYS[2]
if not seeded(hash) then
  return false
end
return refresh_device(hash, exp, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
