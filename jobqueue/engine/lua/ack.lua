-- ack: record jobs as completed, fenced on ownership.
-- KEYS[1] the worker's processing list   KEYS[2] completed list (capped)   KEYS[3] stats hash
-- KEYS[4..] idempotency keys of the jobs that have one
-- ARGV[1] completed list cap   ARGV[2] idempotency ttl in ms
-- ARGV[3..] pairs: payload, index into KEYS of its idempotency key (0 = none)
-- Returns one flag per job: 1 acked, 0 fenced out (the job was no longer this worker's, for
-- example because it was reaped; its completion is then not recorded twice).
-- The idempotency key is marked done either way: the handler's effect did happen.
local cap = tonumber(ARGV[1])
local flags = {}
local acked = 0
for i = 3, #ARGV, 2 do
  local payload = ARGV[i]
  local idem = tonumber(ARGV[i + 1])
  local owned = redis.call('LREM', KEYS[1], -1, payload)
  if idem > 0 then
    redis.call('SET', KEYS[idem], 'done', 'PX', ARGV[2])
  end
  if owned > 0 then
    acked = acked + 1
    if cap > 0 then redis.call('LPUSH', KEYS[2], payload) end
    flags[#flags + 1] = 1
  else
    flags[#flags + 1] = 0
  end
end
if acked > 0 then
  if cap > 0 then redis.call('LTRIM', KEYS[2], 0, cap - 1) end
  redis.call('HINCRBY', KEYS[3], 'completed', acked)
end
return flags
