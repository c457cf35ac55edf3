-- run_now: move chosen scheduled jobs (a retry in backoff, a delayed job) to the head of
-- their queue, so they are claimed next, without waiting for their due time.
-- KEYS[1] scheduled zset   KEYS[2] pending list   KEYS[3] stats hash
-- ARGV[1..] members of the scheduled set, as read from it
-- Returns how many moved; a member no longer scheduled (promoted or moved meanwhile) is
-- skipped. The job's record says pending again (lib.lua).
local moved = 0
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) > 0 then
    redis.call('RPUSH', KEYS[2], ARGV[i])
    note(KEYS[3], ARGV[i], 'state', 'pending')
    moved = moved + 1
  end
end
if moved > 0 then redis.call('HINCRBY', KEYS[3], 'promoted', moved) end
return moved
