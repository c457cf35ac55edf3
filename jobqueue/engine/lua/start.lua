-- start: record that claimed jobs have started running: reserved list -> processing list.
-- KEYS[1] the worker's reserved list   KEYS[2] the worker's processing list
-- KEYS[3] the worker's lease on this queue   KEYS[4] stats hash (names the job records)
-- ARGV[1..] payloads as claimed
-- Returns one flag per payload: 1 recorded; 0 not in the reserved list (handed back or reaped
-- meanwhile, so this run is a duplicate whose outcome will be fenced out). Every flag is 0
-- when the lease is gone: a worker that lost its lease records nothing more.
-- Each started job's record: processing, by which worker, since when, one attempt more.
local flags = {}
local leased = redis.call('PTTL', KEYS[3]) > 0
local now = leased and #ARGV > 0 and now_ms()
for i = 1, #ARGV do
  if leased and redis.call('LREM', KEYS[1], -1, ARGV[i]) > 0 then
    redis.call('LPUSH', KEYS[2], ARGV[i])
    started(KEYS[4], ARGV[i], KEYS[2], now)
    flags[i] = 1
  else
    flags[i] = 0
  end
end
return flags
