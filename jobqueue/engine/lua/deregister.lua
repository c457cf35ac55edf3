-- deregister: remove a worker from the registry.
-- KEYS[1] heartbeat key   KEYS[2] registry hash
-- ARGV[1] worker id   ARGV[2] '1' when the worker leaves by itself, '0' when a reaper
-- removes it (then only while its heartbeat is still absent: a worker that came back and
-- re-registered is left alone)
-- Returns 1 when removed, 0 when the worker was alive again.
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
