-- take_token: a token bucket shared by every producer on this Redis.
-- KEYS[1] bucket hash (tokens, ts in microseconds)
-- ARGV[1] rate in tokens per second   ARGV[2] burst (bucket size)   ARGV[3] tokens wanted
-- Returns 0 when the tokens were taken, else the microseconds to wait before they will be
-- there (nothing is taken then). Time is Redis' clock, so producers on many hosts agree.
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now_us
if now_us > ts then
  tokens = math.min(burst, tokens + (now_us - ts) * rate / 1000000)
end
local wait = 0
if tokens >= want then
  tokens = tokens - want
else
  wait = math.ceil((want - tokens) * 1000000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now_us)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 60000)
return wait
