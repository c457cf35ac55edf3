-- claim: move up to N jobs from the head of a queue into one worker's reserved list, but only
-- while the worker holds its lease on this queue with at least min_ms of life left.
-- KEYS[1] pending list   KEYS[2] the worker's reserved list   KEYS[3] the worker's lease
-- ARGV[1] N, the most jobs to take   ARGV[2] min_ms, the lease life (ms) a claim needs
-- Returns the claimed payloads, oldest first (an empty array when the queue is empty), or nil
-- when the lease is missing or too short: the worker must renew or register again first.
-- The lease check is what makes a claim by a worker resuming from a stall impossible once a
-- reaper may have given its lists up (reap.lua runs only when the lease is gone).
runs_at_maxmemory(KEYS[1])
local n = tonumber(ARGV[1])
local min_ms = tonumber(ARGV[2])
if not n or not min_ms then return redis.error_reply('claim: N and min_ms must be numbers') end
if redis.call('PTTL', KEYS[3]) < math.max(min_ms, 1) then return false end
local claimed = {}
for i = 1, n do
  local payload = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not payload then break end
  claimed[i] = payload
end
return claimed
