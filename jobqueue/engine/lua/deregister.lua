-- deregister: remove a worker from the registry, only under the lease token it was seen with.
-- KEYS[1] heartbeat key   KEYS[2] registry hash
-- ARGV[1] worker id   ARGV[2] the token   ARGV[3] '1' when the worker's owner removes it (its
-- lists are empty), '0' when a reaper does (then only while the heartbeat is still absent: a
-- worker that came back has a heartbeat, and one that registered again has a new token)
-- Returns 1 when removed, 0 when left alone.
local info = redis.call('HGET', KEYS[2], ARGV[1])
if not info then return 0 end
local ok, decoded = pcall(cjson.decode, info)
local token = ok and type(decoded) == 'table' and decoded['lease'] or ''
if token ~= ARGV[2] then return 0 end
if ARGV[3] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
