-- retry: move a failed job from the worker's lists to the scheduled set.
-- KEYS[1] the worker's processing list   KEYS[2] its reserved list (a job that failed within
-- a round trip of its start was never recorded as started)   KEYS[3] scheduled zset
-- KEYS[4] stats hash
-- ARGV[1] the payload as claimed   ARGV[2] the payload with retries+1 and last_error
-- ARGV[3] backoff delay in ms (the due time is Redis' clock plus this)
-- Returns 1 when moved, 0 when fenced out (the job was no longer this worker's).
-- The job's record: scheduled, its due time, the error.
-- Two copies of one job both stay scheduled (zadd_unique, lib.lua).
local delay = tonumber(ARGV[3])
if not delay or delay < 0 then return redis.error_reply('retry: delay must be a number >= 0') end
local now = now_ms()
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then
  if redis.call('LREM', KEYS[2], -1, ARGV[1]) == 0 then return 0 end
  started(KEYS[4], ARGV[1], KEYS[1], now)
end
local due = now + delay
zadd_unique(KEYS[3], due, ARGV[2])
note(KEYS[4], ARGV[2], 'state', 'scheduled', 'due_ms', due, 'last_error', error_of(ARGV[2]))
redis.call('HINCRBY', KEYS[4], 'retried', 1)
return 1
