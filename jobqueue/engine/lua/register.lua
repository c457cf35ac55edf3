-- register: make a worker live: its heartbeat key, then its registry entry.
-- KEYS[1] heartbeat key   KEYS[2] registry hash (worker id -> info JSON)
-- ARGV[1] worker id   ARGV[2] info JSON   ARGV[3] heartbeat ttl in ms
-- Returns 1. Both writes in one script, so the reaper never sees an entry without a heartbeat
-- that was never set.
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
