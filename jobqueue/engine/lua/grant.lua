-- grant: give a worker its lease on one queue (after register, or again when it lapsed).
-- KEYS[1] the worker's lease key   ARGV[1] lease token   ARGV[2] ttl in ms
-- Returns 1. A script only so that it runs at maxmemory (lib: runs_at_maxmemory): a
-- worker that cannot hold its lease cannot drain a full Redis.
local ttl = tonumber(ARGV[2])
if not ttl or ttl <= 0 then return redis.error_reply('grant: ttl must be > 0') end
runs_at_maxmemory(KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
return 1
