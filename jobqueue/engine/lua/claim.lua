-- claim: move up to N jobs from the head of a queue into one worker's reserved list, but only
-- while the worker holds its lease on this queue with at least min_ms of life left.
-- KEYS[1] pending list   KEYS[2] the worker's reserved list   KEYS[3] the worker's lease
-- KEYS[4] the queue's rate bucket (hash: tokens, ts in microseconds)   KEYS[5] stats hash
-- ARGV[1] N, the most jobs to take   ARGV[2] min_ms, the lease life (ms) a claim needs
-- ARGV[3] the queue's rate limit in jobs per second, fleet-wide (0: none)   ARGV[4] its burst
-- Returns {wait_ms, payloads...}: the claimed payloads, oldest first (none when the queue
-- is empty), after wait_ms, 0 unless the rate limit left no token (then nothing is claimed
-- and wait_ms says when the next one comes); or nil when the lease is missing or too short:
-- the worker must renew or register again first.
-- The rate limit is a token bucket on Redis' clock shared by every worker of the queue
-- (take_token.lua is the producers' twin), taken at claim: however many workers run, the
-- queue's jobs start no faster than the rate (Sidekiq Enterprise's and relay's limiters).
-- The lease check is what makes a claim by a worker resuming from a stall impossible once a
-- reaper may have given its lists up (reap.lua runs only when the lease is gone).
runs_at_maxmemory(KEYS[1])
local n = tonumber(ARGV[1])
local min_ms = tonumber(ARGV[2])
if not n or not min_ms then return redis.error_reply('claim: N and min_ms must be numbers') end
if redis.call('PTTL', KEYS[3]) < math.max(min_ms, 1) then return false end
local rate = tonumber(ARGV[3]) or 0
local tokens, now_us
if rate > 0 then
  local burst = tonumber(ARGV[4]) or 1
  local now = redis.call('TIME')
  now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local state = redis.call('HMGET', KEYS[4], 'tokens', 'ts')
  tokens = tonumber(state[1]) or burst
  local ts = tonumber(state[2]) or now_us
  if now_us > ts then tokens = math.min(burst, tokens + (now_us - ts) * rate / 1000000) end
  n = math.min(n, math.floor(tokens))
  if n < 1 then
    redis.call('HINCRBY', KEYS[5], 'rate_limited', 1)
    return {math.ceil((1 - tokens) * 1000 / rate)}
  end
end
local claimed = {0}
for i = 1, n do
  local payload = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not payload then break end
  claimed[#claimed + 1] = payload
end
if rate > 0 then
  redis.call('HSET', KEYS[4], 'tokens', tostring(tokens - (#claimed - 1)), 'ts', now_us)
  redis.call('PEXPIRE', KEYS[4], 3600000)
end
return claimed
