-- Prepended to every presence script (redis.rs builds each one as this file + its body, after
-- a `local HASH_TTL_MS = ...` line). The layout and encodings are documented in redis.rs;
-- the index member formats live only here.

local function device_member(user, device)
  return 'd:' .. user .. ':' .. device
end

local function manual_member(user)
  return 'm:' .. user
end

-- An index member ('d:<user>:<device>' or 'm:<user>') as the user and the field it expires.
local function parse_member(member)
  if string.sub(member, 1, 2) == 'd:' then
    local sep = string.find(member, ':', 3, true)
    return string.sub(member, 3, sep - 1), 'd:' .. string.sub(member, sep + 1)
  end
  return string.sub(member, 3), 'm'
end

-- Only a seeded hash may change: anything else would invent a user without their persisted
-- manual status (an INVISIBLE shown as ONLINE).
local function seeded(hash)
  return redis.call('HEXISTS', hash, 'k') == 1
end

-- `next_version` of state/mod.rs: max(v + 1, now in microseconds). Lua numbers are doubles,
-- exact below 2^53 (microseconds until the year 2255); '%.0f' because tostring would print
-- a 16-digit number as 1.7e+15.
local function bump(hash, now_us)
  local v = tonumber(redis.call('HGET', hash, 'v') or '0')
  redis.call('HSET', hash, 'v', string.format('%.0f', math.max(v + 1, tonumber(now_us))))
end

-- An idle user's hash goes away HASH_TTL_MS after its last write and is reseeded from the
-- database later. The index lives as long as its freshest write, so it outlives every hash
-- its members point at.
local function touch(hash, exp)
  redis.call('PEXPIRE', hash, HASH_TTL_MS)
  redis.call('PEXPIRE', exp, HASH_TTL_MS)
end

-- The write of refresh.lua, which heartbeat.lua makes too once its token is taken: the device's
-- entry until expires_ms with `activity` ('o', 'a', or '' to keep the last report, ONLINE for
-- a new entry), last_seen = now_ms unless INVISIBLE, the version. The hash must be seeded.
-- Returns {before, after} (HGETALL).
local function refresh_device(hash, exp, user, now_us, device, activity, now_ms, expires_ms)
  local before = redis.call('HGETALL', hash)
  local field = 'd:' .. device
  if activity == '' then
    local entry = redis.call('HGET', hash, field)
    activity = entry and string.sub(entry, 1, 1) or 'o'
  end
  redis.call('HSET', hash, field, activity .. '|' .. expires_ms)
  redis.call('ZADD', exp, expires_ms, device_member(user, device))
  -- INVISIBLE freezes last_seen.
  local manual = redis.call('HGET', hash, 'm')
  if not (manual and string.sub(manual, 1, 1) == 'i') then
    redis.call('HSET', hash, 'ls', now_ms)
  end
  bump(hash, now_us)
  touch(hash, exp)
  return {before, redis.call('HGETALL', hash)}
end
