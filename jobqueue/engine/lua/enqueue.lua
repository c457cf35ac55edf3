-- enqueue: add jobs to one queue now, or to its scheduled set when delayed. One call takes a
-- whole batch's jobs for the queue (Engine.enqueue_many sends at most ENQUEUE_PAGE), so a
-- batch costs one command per queue, not one per job.
-- KEYS[1] pending list   KEYS[2] scheduled zset   KEYS[3] stats hash
-- KEYS[4..] idempotency keys of the jobs that have one (a job is refused if its key is live
-- or done)
-- ARGV[1] delay in ms (0 = now)   ARGV[2] idempotency ttl in ms
-- ARGV[3] '1': refuse a job whose id already has a record (dedupe by id)
-- ARGV[4..] pairs: payload, index into KEYS of its idempotency key (0 = none)
-- Returns one flag per job: 1 enqueued, 0 refused (its idempotency key, or asked to, its id,
-- already exists; a key twice in one call: the second copy is refused).
-- Writes each job's record (lib.lua): pending, or scheduled with its due time.
-- Two enqueues of one job are two jobs, with a delay as without one (zadd_unique, lib.lua).
-- Arguments are checked before the first write.
local delay = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
if not delay or delay < 0 then return redis.error_reply('enqueue: delay must be >= 0') end
for i = 5, #ARGV, 2 do
  local idem = tonumber(ARGV[i])
  if not idem or idem > #KEYS or (idem > 0 and idem < 4) then
    return redis.error_reply('enqueue: bad idempotency key index')
  end
  if idem > 0 and (not ttl or ttl <= 0) then
    return redis.error_reply('enqueue: ttl must be > 0')
  end
end
local dedupe = ARGV[3] == '1'
-- The first write must be one Redis refuses at maxmemory (a denyoom command): once a script
-- has written, Redis lets it run to its end, so a first DEL (not denyoom) would let a full
-- Redis take the whole batch. This one changes nothing; at maxmemory it refuses the call.
redis.call('HINCRBY', KEYS[3], 'enqueued', 0)
local now = now_ms()
local flags = {}
local enqueued = 0
local pushed = {} -- pushed in one LPUSH per PUSH_CHUNK jobs, in order: as one LPUSH each
local PUSH_CHUNK = 1000 -- unpack's arguments live on Lua's C stack (LUAI_MAXCSTACK 8000)
local function push()
  if #pushed > 0 then redis.call('LPUSH', KEYS[1], unpack(pushed)) end
  pushed = {}
end
for i = 4, #ARGV, 2 do
  local payload = ARGV[i]
  local idem = tonumber(ARGV[i + 1])
  local id = job_id(payload)
  local fresh = not (dedupe and id and redis.call('EXISTS', record_key(KEYS[3], id)) == 1)
  if fresh and idem > 0 then
    fresh = redis.call('SET', KEYS[idem], 'live', 'NX', 'PX', ttl) and true or false
  end
  if fresh then
    if delay > 0 then
      zadd_unique(KEYS[2], now + delay, payload)
    else
      pushed[#pushed + 1] = payload
      if #pushed == PUSH_CHUNK then push() end
    end
    if id then
      local record = record_key(KEYS[3], id)
      if not dedupe then redis.call('DEL', record) end -- with dedupe it has none (EXISTS)
      if delay > 0 then
        redis.call('HSET', record, 'state', 'scheduled', 'enqueued_ms', now, 'due_ms', now + delay)
      else
        redis.call('HSET', record, 'state', 'pending', 'enqueued_ms', now)
      end
    end
    enqueued = enqueued + 1
  end
  flags[#flags + 1] = fresh and 1 or 0
end
push()
if enqueued > 0 then
  redis.call('HINCRBY', KEYS[3], 'enqueued', enqueued)
  if delay > 0 then redis.call('HINCRBY', KEYS[3], 'scheduled', enqueued) end
end
return flags
