-- KEYS: exp. ARGV: hash key prefix, until_ms, limit. Device entries due before until_ms now
-- expire at until_ms (manual clears keep their time); returns how many were extended.
local exp, prefix, until_ms, limit = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local extended, skipped = 0, 0
while extended < limit do
  -- Extended members leave the range; skipped manual ones stay, ahead of the rest.
  local batch = redis.call('ZRANGEBYSCORE', exp, '-inf', '(' .. until_ms,
    'LIMIT', skipped, limit - extended)
  if #batch == 0 then
    break
  end
  for _, member in ipairs(batch) do
    if string.sub(member, 1, 2) == 'd:' then
      redis.call('ZADD', exp, until_ms, member)
      local user, field = parse_member(member)
      local hash = prefix .. user
      local entry = redis.call('HGET', hash, field)
      if entry then
        redis.call('HSET', hash, field, string.sub(entry, 1, 2) .. until_ms)
        touch(hash, exp)
      end
      extended = extended + 1
    else
      skipped = skipped + 1
    end
  end
end
return extended
