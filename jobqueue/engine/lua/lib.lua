-- lib: local helpers put in front of every script when it is loaded (scripts.py). Nothing
-- here touches a key it is not given.

-- A sorted set keeps one member per value: when an identical payload is already there (two
-- copies of one job), this copy gets blanks after its opening brace, which changes its bytes
-- and not its JSON, so neither copy is lost. Returns the member as added.
local function zadd_unique(key, score, payload)
  local member, blanks = payload, 0
  while redis.call('ZADD', key, 'NX', score, member) == 0 do
    blanks = blanks + 1
    member = '{' .. string.rep(' ', blanks) .. string.sub(payload, 2)
  end
  return member
end

-- Redis' clock in milliseconds.
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end

