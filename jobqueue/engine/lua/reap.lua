-- reap: recover the jobs of a dead worker, each counted as one attempt.
-- KEYS[1] the dead worker's processing list   KEYS[2] pending list   KEYS[3] dead-letter list
-- KEYS[4] stats hash
-- ARGV triples: payload as found, its successor, destination ('p' queue head, 'd' dead-letter)
-- Returns {requeued, dead}. A payload already gone (acked, or taken by a racing reaper) is
-- skipped, so several reapers may run at once.
local requeued, dead = 0, 0
for i = 1, #ARGV, 3 do
  if redis.call('LREM', KEYS[1], -1, ARGV[i]) > 0 then
    if ARGV[i + 2] == 'd' then
      redis.call('LPUSH', KEYS[3], ARGV[i + 1])
      dead = dead + 1
    else
      redis.call('RPUSH', KEYS[2], ARGV[i + 1])
      requeued = requeued + 1
    end
  end
end
if requeued > 0 then redis.call('HINCRBY', KEYS[4], 'reaped', requeued) end
if dead > 0 then
  redis.call('HINCRBY', KEYS[4], 'reaped', dead)
  redis.call('HINCRBY', KEYS[4], 'dead', dead)
end
return {requeued, dead}
