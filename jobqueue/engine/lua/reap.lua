-- reap: recover the jobs of a worker whose lease on this queue has expired. Jobs it had
-- started are charged one attempt (back to the queue's head, or dead-lettered on their
-- last); jobs it had only claimed go back untouched. One call does a bounded amount of work
-- (at most RELEASE_PAGE unstarted jobs, and the started ones it is given): a worker that
-- died holding 20,000 jobs is reaped in many short calls, never one that stalls Redis.
-- KEYS[1] the worker's processing list   KEYS[2] the worker's reserved list
-- KEYS[3] the worker's lease   KEYS[4] pending list   KEYS[5] dead-letter list
-- KEYS[6] stats hash
-- ARGV[1] ms to keep a dead-lettered job's record (lib.lua)
-- ARGV[2..] triples for the processing list as the reaper read it (its oldest entries
-- first; LREM from the tail finds them at once): payload, its successor, destination ('p'
-- queue head, 'd' dead-letter)
-- Returns {status, released, flag per triple (1 moved, 0 gone already)}. status: 1 done,
-- both lists are empty; 0 refused, the lease is alive (nothing moved); 2 a list still holds
-- entries (read the processing list again and call again). Racing reapers are safe: each
-- payload moves once.
runs_at_maxmemory(KEYS[1])
local RELEASE_PAGE = 500
if redis.call('EXISTS', KEYS[3]) == 1 then return {0, 0} end
local keep = tonumber(ARGV[1])
if not keep or keep < 0 then return redis.error_reply('reap: record ttl must be >= 0') end
for i = 4, #ARGV, 3 do
  if ARGV[i] ~= 'p' and ARGV[i] ~= 'd' then return redis.error_reply('reap: bad destination') end
end
local released = 0
while released < RELEASE_PAGE and redis.call('LMOVE', KEYS[2], KEYS[4], 'LEFT', 'RIGHT') do
  released = released + 1
end
local result = {1, released}
local requeued, dead = 0, 0
local now = now_ms()
for i = 2, #ARGV, 3 do
  local moved = 0
  if redis.call('LREM', KEYS[1], -1, ARGV[i]) > 0 then
    moved = 1
    if ARGV[i + 2] == 'd' then
      redis.call('LPUSH', KEYS[5], ARGV[i + 1])
      finish(KEYS[6], ARGV[i + 1], 'dead', now, keep, error_of(ARGV[i + 1]))
      dead = dead + 1
    else
      redis.call('RPUSH', KEYS[4], ARGV[i + 1])
      note(KEYS[6], ARGV[i + 1], 'state', 'pending', 'last_error', error_of(ARGV[i + 1]))
      requeued = requeued + 1
    end
  end
  result[#result + 1] = moved
end
if released > 0 then redis.call('HINCRBY', KEYS[6], 'released', released) end
if requeued + dead > 0 then redis.call('HINCRBY', KEYS[6], 'reaped', requeued + dead) end
if dead > 0 then redis.call('HINCRBY', KEYS[6], 'dead', dead) end
if redis.call('LLEN', KEYS[1]) > 0 or redis.call('LLEN', KEYS[2]) > 0 then result[1] = 2 end
return result
