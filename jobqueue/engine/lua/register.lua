-- register: make a worker live under a new lease token: its heartbeat key, then its registry
-- entry. The per-queue lease keys are granted after this, never before.
-- KEYS[1] heartbeat key   KEYS[2] registry hash (worker id -> info JSON)
-- ARGV[1] worker id   ARGV[2] info JSON (its "lease" field is the token)   ARGV[3] token
-- ARGV[4] heartbeat ttl in ms
-- Returns 1. Both writes in one script, so the reaper never sees an entry without a heartbeat
-- that was never set.
runs_at_maxmemory(KEYS[2])
local ttl = tonumber(ARGV[4])
if not ttl or ttl <= 0 then return redis.error_reply('register: ttl must be > 0') end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ttl)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
