-- KEYS: exp. ARGV: hash key prefix, now_ms, limit, now_us. Pops what is due and applies each
-- removal to its user's hash; returns {user, before, after, ...} once per user changed.
-- Whoever's ZREM removed a member reports it, so racing sweepers never report one twice.
local exp, prefix = KEYS[1], ARGV[1]
local due = redis.call('ZRANGEBYSCORE', exp, '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
local order, befores = {}, {}
for _, member in ipairs(due) do
  if redis.call('ZREM', exp, member) == 1 then
    local user, field = parse_member(member)
    local hash = prefix .. user
    -- An unseeded user (its hash expired or was forgotten) has nothing left to remove.
    if seeded(hash) then
      if not befores[user] then
        befores[user] = redis.call('HGETALL', hash)
        order[#order + 1] = user
      end
      redis.call('HDEL', hash, field)
      bump(hash, ARGV[4])
      touch(hash, exp)
    end
  end
end
local out = {}
for _, user in ipairs(order) do
  out[#out + 1] = user
  out[#out + 1] = befores[user]
  out[#out + 1] = redis.call('HGETALL', prefix .. user)
end
return out
