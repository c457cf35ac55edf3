-- bury: move a job from the worker's lists to the dead-letter list.
-- KEYS[1] the worker's processing list   KEYS[2] its reserved list   KEYS[3] dead-letter list
-- KEYS[4] stats hash
-- ARGV[1] the payload as claimed   ARGV[2] the dead-letter entry (job plus reason, or the
-- raw bytes wrapped with the reason when the payload was not a job)
-- ARGV[3] ms to keep the job's record (lib.lua)
-- Returns 1 when moved, 0 when fenced out.
local now = now_ms()
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then
  if redis.call('LREM', KEYS[2], -1, ARGV[1]) == 0 then return 0 end
  started(KEYS[4], ARGV[1], KEYS[1], now)
end
redis.call('LPUSH', KEYS[3], ARGV[2])
finish(KEYS[4], ARGV[2], 'dead', now, tonumber(ARGV[3]) or 0, error_of(ARGV[2]))
redis.call('HINCRBY', KEYS[4], 'dead', 1)
return 1
