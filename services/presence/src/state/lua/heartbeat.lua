-- A Heartbeat: the device's rate limit and refresh.lua's write in one round trip. Prefixed with
-- echo-cache's TAKE_FUNCTION (`take_bucket`, the cache's token bucket).
-- KEYS: hash, exp, bucket. ARGV: as refresh.lua (activity 'o' or 'a'), then the bucket's
-- capacity and tokens per ms. In contract order: false when unseeded (nothing taken: the
-- caller seeds and calls again); the wait in ms (an integer) when the bucket is empty, with
-- nothing written; else refresh.lua's {before, after}.
local hash, exp = KEYS[1], KEYS[2]
if not seeded(hash) then
  return false
end
-- The bucket runs on the caller's clock, the one its expiries use (now_us in ms).
local taken = take_bucket(KEYS[3], tonumber(ARGV[7]), tonumber(ARGV[8]), 1, tonumber(ARGV[2]) / 1000)
if taken[1] == 0 then
  return taken[3]
end
return refresh_device(hash, exp, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
