-- withdraw: take back the unclaimed jobs a tool enqueued (admin bench after a timeout or
-- Ctrl-C), found by a marker their payloads carry. Claimed jobs are left to their workers.
-- KEYS[1] pending list   KEYS[2] scheduled zset   KEYS[3] stats hash
-- ARGV[1] marker: a plain substring only those payloads contain
-- Returns how many entries were removed (counted as 'withdrawn' in the stats hash).
-- One pass over both (O(their length)): for tools, never for the hot path.
local marker = ARGV[1]
local function marked(item) return string.find(item, marker, 1, true) ~= nil end
local function forget(item)  -- a withdrawn job leaves no record behind (lib.lua)
  local id = job_id(item)
  if id then redis.call('DEL', record_key(KEYS[3], id)) end
end

local removed = 0
local kept = {}
for _, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if marked(item) then
    removed = removed + 1
    forget(item)
  else
    kept[#kept + 1] = item
  end
end
if removed > 0 then
  redis.call('DEL', KEYS[1])
  for first = 1, #kept, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(kept, first, math.min(first + 999, #kept)))
  end
end
for _, item in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if marked(item) then
    redis.call('ZREM', KEYS[2], item)
    forget(item)
    removed = removed + 1
  end
end
if removed > 0 then redis.call('HINCRBY', KEYS[3], 'withdrawn', removed) end
return removed
