-- release: give jobs back to the head of their queue without counting an attempt
-- (unstarted jobs on shutdown, an unstarted job held too long, jobs a stopping worker could
-- not finish in its grace period).
-- KEYS[1] the worker's list they are in (reserved or processing)   KEYS[2] pending list
-- KEYS[3] stats hash
-- ARGV[1..] payloads as claimed, newest first (the last one given is claimed next)
-- Returns how many were released; a payload no longer in the list is skipped.
local released = 0
for i = 1, #ARGV do
  if redis.call('LREM', KEYS[1], -1, ARGV[i]) > 0 then
    redis.call('RPUSH', KEYS[2], ARGV[i])
    note(KEYS[3], ARGV[i], 'state', 'pending')
    released = released + 1
  end
end
if released > 0 then redis.call('HINCRBY', KEYS[3], 'released', released) end
return released
