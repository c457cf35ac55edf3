-- enqueue: add one job to its queue now, or to the scheduled set when delayed.
-- KEYS[1] pending list   KEYS[2] scheduled zset   KEYS[3] stats hash
-- KEYS[4] idempotency key (optional; when given the job is refused if it is live or done)
-- ARGV[1] payload   ARGV[2] delay in ms (0 = now)   ARGV[3] idempotency ttl in ms
-- Returns 1 when enqueued, 0 when the idempotency key already exists.
-- Two enqueues of one job are two jobs, with a delay as without one (zadd_unique, lib.lua).
local delay = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
if not delay or delay < 0 then return redis.error_reply('enqueue: delay must be >= 0') end
if KEYS[4] and (not ttl or ttl <= 0) then return redis.error_reply('enqueue: ttl must be > 0') end
if KEYS[4] then
  if not redis.call('SET', KEYS[4], 'live', 'NX', 'PX', ttl) then
    return 0
  end
end
if delay > 0 then
  zadd_unique(KEYS[2], now_ms() + delay, ARGV[1])
  redis.call('HINCRBY', KEYS[3], 'scheduled', 1)
else
  redis.call('LPUSH', KEYS[1], ARGV[1])
end
redis.call('HINCRBY', KEYS[3], 'enqueued', 1)
return 1
