-- KEYS: hash, exp. ARGV: user, now_us, manual (as set_manual, already filtered: a status
-- past its end is not passed), clears_ms (or ''), last_seen_ms (or ''). Nothing when already
-- seeded: a concurrent seed or write won.
local hash, exp = KEYS[1], KEYS[2]
if seeded(hash) then
  return 0
end
-- A hash without its seed mark holds nothing trustworthy (no script writes one).
redis.call('DEL', hash)
redis.call('HSET', hash, 'k', '1')
if ARGV[3] ~= '' then
  redis.call('HSET', hash, 'm', ARGV[3])
end
if ARGV[4] ~= '' then
  redis.call('ZADD', exp, ARGV[4], manual_member(ARGV[1]))
end
if ARGV[5] ~= '' then
  redis.call('HSET', hash, 'ls', ARGV[5])
end
bump(hash, ARGV[2])
touch(hash, exp)
return 1
