-- publish: replace a live worker's registry info (its breaker state, its pid), keeping its
-- lease; a worker whose heartbeat has expired or whose token changed is left alone, so a
-- late update never brings back an entry a reaper removed.
-- KEYS[1] heartbeat key   KEYS[2] registry hash
-- ARGV[1] worker id   ARGV[2] info JSON   ARGV[3] the lease token it was registered with
-- Returns 1 when published, 0 when the worker is not live under that token.
runs_at_maxmemory(KEYS[2])
if redis.call('GET', KEYS[1]) ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
