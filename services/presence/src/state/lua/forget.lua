-- KEYS: hash, exp. ARGV: user. Deletes the hash and the index members its fields name.
local hash, exp = KEYS[1], KEYS[2]
for _, field in ipairs(redis.call('HKEYS', hash)) do
  if string.sub(field, 1, 2) == 'd:' then
    redis.call('ZREM', exp, device_member(ARGV[1], string.sub(field, 3)))
  end
end
redis.call('ZREM', exp, manual_member(ARGV[1]))
redis.call('DEL', hash)
return 0
