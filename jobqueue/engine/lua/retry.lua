-- retry: move a failed job from the worker's processing list to the scheduled set.
-- KEYS[1] the worker's processing list   KEYS[2] scheduled zset   KEYS[3] stats hash
-- ARGV[1] the payload as claimed   ARGV[2] the payload with retries+1 and last_error
-- ARGV[3] backoff delay in ms (the due time is Redis' clock plus this)
-- Returns 1 when moved, 0 when fenced out (the job was no longer this worker's).
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
local now = redis.call('TIME')
local due = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], due, ARGV[2])
redis.call('HINCRBY', KEYS[3], 'retried', 1)
return 1
