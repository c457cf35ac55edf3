-- enqueue: add one job to its queue now, or to the scheduled set when delayed.
-- KEYS[1] pending list   KEYS[2] scheduled zset   KEYS[3] stats hash
-- KEYS[4] idempotency key (optional; when given the job is refused if it is live or done)
-- ARGV[1] payload   ARGV[2] delay in ms (0 = now)   ARGV[3] idempotency ttl in ms
-- Returns 1 when enqueued, 0 when the idempotency key already exists.
if KEYS[4] then
  if not redis.call('SET', KEYS[4], 'live', 'NX', 'PX', ARGV[3]) then
    return 0
  end
end
local delay = tonumber(ARGV[2])
if delay > 0 then
  local now = redis.call('TIME')
  local due = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + delay
  redis.call('ZADD', KEYS[2], due, ARGV[1])
  redis.call('HINCRBY', KEYS[3], 'scheduled', 1)
else
  redis.call('LPUSH', KEYS[1], ARGV[1])
end
redis.call('HINCRBY', KEYS[3], 'enqueued', 1)
return 1
