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


-- A transition that moves a job or keeps a worker's lease must run at maxmemory too, or a
-- full Redis could never drain: its workers could not claim, reap or even register. Redis
-- refuses a script's memory-growing (denyoom) command only while the script has written
-- nothing yet (it never stops a script half-way), so a script whose first write is such a
-- command writes nothing first: PERSIST of a key that has no TTL, or none left to lose.
-- Scripts whose first write is LREM or ZREM need no call. Enqueue never calls it: at
-- maxmemory it is refused, and the producer hears so.
local function runs_at_maxmemory(key)
  redis.call('PERSIST', key)
end
