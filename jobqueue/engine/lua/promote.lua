-- promote: move scheduled jobs that are due (by Redis' clock) to the tail of their queue.
-- KEYS[1] scheduled zset   KEYS[2] pending list   KEYS[3] stats hash
-- ARGV[1] the most jobs to move in this call
-- Returns how many moved. Atomic, so racing promoters never move a job twice.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[1]))
for i = 1, #due do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('LPUSH', KEYS[2], due[i])
  note(KEYS[3], due[i], 'state', 'pending')
end
if #due > 0 then redis.call('HINCRBY', KEYS[3], 'promoted', #due) end
return #due
