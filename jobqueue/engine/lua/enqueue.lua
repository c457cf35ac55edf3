-- enqueue: add one job to its queue now, or to the scheduled set when delayed.
-- KEYS[1] pending list   KEYS[2] scheduled zset   KEYS[3] stats hash
-- KEYS[4] idempotency key (optional; when given the job is refused if it is live or done)
-- ARGV[1] payload   ARGV[2] delay in ms (0 = now)   ARGV[3] idempotency ttl in ms
-- ARGV[4] '1': refuse the job when its id already has a record (dedupe by id)
-- Returns 1 when enqueued, 0 when the idempotency key (or, asked to, the id) already exists.
-- Writes the job's record (lib.lua): pending, or scheduled with its due time.
-- Two enqueues of one job are two jobs, with a delay as without one (zadd_unique, lib.lua).
local delay = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
if not delay or delay < 0 then return redis.error_reply('enqueue: delay must be >= 0') end
if KEYS[4] and (not ttl or ttl <= 0) then return redis.error_reply('enqueue: ttl must be > 0') end
local id = job_id(ARGV[1])
if ARGV[4] == '1' and id and redis.call('EXISTS', record_key(KEYS[3], id)) == 1 then return 0 end
if KEYS[4] then
  if not redis.call('SET', KEYS[4], 'live', 'NX', 'PX', ttl) then
    return 0
  end
end
local now = now_ms()
if delay > 0 then
  zadd_unique(KEYS[2], now + delay, ARGV[1])
  redis.call('HINCRBY', KEYS[3], 'scheduled', 1)
else
  redis.call('LPUSH', KEYS[1], ARGV[1])
end
if id then
  local record = record_key(KEYS[3], id)
  redis.call('DEL', record)
  if delay > 0 then
    redis.call('HSET', record, 'state', 'scheduled', 'enqueued_ms', now, 'due_ms', now + delay)
  else
    redis.call('HSET', record, 'state', 'pending', 'enqueued_ms', now)
  end
end
redis.call('HINCRBY', KEYS[3], 'enqueued', 1)
return 1
