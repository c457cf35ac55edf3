-- claim: move up to N jobs from the head of a queue into one worker's processing list.
-- KEYS[1] pending list   KEYS[2] the worker's processing list for this queue
-- ARGV[1] N, the most jobs to take
-- Returns the claimed payloads, oldest first. Each one is protected in the processing list
-- from the moment it leaves the queue, so a worker that dies holding it gets it reaped.
local claimed = {}
for i = 1, tonumber(ARGV[1]) do
  local payload = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not payload then break end
  claimed[i] = payload
end
return claimed
