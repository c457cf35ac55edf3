-- ack: record jobs as completed, fenced on ownership.
-- KEYS[1] the worker's processing list   KEYS[2] the worker's reserved list
-- KEYS[3] completed list (capped)   KEYS[4] stats hash
-- KEYS[5..] idempotency keys of the jobs that have one
-- ARGV[1] completed list cap   ARGV[2] idempotency ttl in ms (0: do not mark keys done)
-- ARGV[3] ms to keep a completed job's record (lib.lua); only the newest ARGV[1] are kept
-- ARGV[4..] pairs: payload, index into KEYS of its idempotency key (0 = none)
-- Returns one flag per job: 1 acked, 0 fenced out (the job was in neither of this worker's
-- lists, for example because it was reaped; its completion is then not recorded twice).
-- A job may still be in the reserved list: one that ran in less than a round trip is acked
-- without its start ever being recorded.
-- The idempotency key is marked done either way: the handler's effect did happen.
-- Arguments are checked before the first write: Redis does not roll a script back, so a
-- failure after an LREM would lose the job.
local cap = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local keep = tonumber(ARGV[3])
if not cap or not ttl or not keep or cap < 0 or ttl < 0 or keep < 0 then
  return redis.error_reply('ack: cap and ttls must be numbers >= 0')
end
for i = 5, #ARGV, 2 do
  local idem = tonumber(ARGV[i])
  if not idem or idem > #KEYS or (idem > 0 and idem < 5) then
    return redis.error_reply('ack: bad idempotency key index')
  end
end
local flags = {}
local acked = 0
local now = now_ms()
for i = 4, #ARGV, 2 do
  local payload = ARGV[i]
  local idem = tonumber(ARGV[i + 1])
  local owned = redis.call('LREM', KEYS[1], -1, payload)
  local unrecorded = false
  if owned == 0 then
    owned = redis.call('LREM', KEYS[2], -1, payload)
    unrecorded = owned > 0
  end
  if idem > 0 and ttl > 0 then
    redis.call('SET', KEYS[idem], 'done', 'PX', ttl)
  end
  if owned > 0 then
    acked = acked + 1
    if cap > 0 then redis.call('LPUSH', KEYS[3], payload) end
    if unrecorded then started(KEYS[4], payload, KEYS[1], now) end
    finish(KEYS[4], payload, 'completed', now, keep)
    flags[#flags + 1] = 1
  else
    flags[#flags + 1] = 0
  end
end
if acked > 0 then
  if cap > 0 then
    -- the jobs that fall off the capped list lose their records too: a queue keeps at most
    -- cap completed records, however long completed_ttl is (BullMQ's removeOnComplete
    -- count and age, both)
    for _, payload in ipairs(redis.call('LRANGE', KEYS[3], cap, -1)) do
      local id = job_id(payload)
      if id then redis.call('DEL', record_key(KEYS[4], id)) end
    end
    redis.call('LTRIM', KEYS[3], 0, cap - 1)
  end
  redis.call('HINCRBY', KEYS[4], 'completed', acked)
end
return flags
