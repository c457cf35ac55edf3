-- lib: local helpers put in front of every script when it is loaded (scripts.py). Nothing
-- here touches a key it is not given.

-- A sorted set keeps one member per value: when an identical payload is already there (two
-- copies of one job), this copy gets blanks after its opening brace, which changes its bytes
-- and not its JSON, so neither copy is lost. Returns the member as added.
local function zadd_unique(key, score, payload)
  local member, blanks = payload, 0
  while redis.call('ZADD', key, 'NX', score, member) == 0 do
    blanks = blanks + 1
    member = '{' .. string.rep(' ', blanks) .. string.sub(payload, 2)
  end
  return member
end

-- Redis' clock in milliseconds.
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end


-- A transition that moves a job or keeps a worker's lease must run at maxmemory too, or a
-- full Redis could never drain: its workers could not claim, reap or even register. Redis
-- refuses a script's memory-growing (denyoom) command only while the script has written
-- nothing yet (it never stops a script half-way), so a script whose first write is such a
-- command writes nothing first: PERSIST of a key that has no TTL, or none left to lose.
-- Scripts whose first write is LREM or ZREM need no call. Enqueue never calls it: at
-- maxmemory it is refused, and the producer hears so.
local function runs_at_maxmemory(key)
  redis.call('PERSIST', key)
end

-- Job records: what ``admin job ID`` and ``Client.get`` read (state, attempts, last error,
-- timestamps in Redis ms), one hash per job, ``{ns:q}:job:<id>``: the queue's hash tag, so
-- it lives in the slot of the transition that writes it. Its name is the stats key's with
-- ``stats`` replaced by ``job:<id>`` (keys.py, QueueKeys.job); every script that writes one
-- is given the stats key. A finished job's record expires after worker.completed_ttl.
-- The id is read from the payload's start, where jobqueue writes it ('{"id":"...'); other
-- producers' JSON is decoded; a payload that is not a job has no id and no record.
local function job_id(payload)
  local id = string.match(payload, '^{"id":"([^"\\]+)"')
  if id then return id end
  local ok, doc = pcall(cjson.decode, payload)
  if ok and type(doc) == 'table' and type(doc.id) == 'string' then return doc.id end
  return nil
end

local function record_key(stats_key, id)
  return string.sub(stats_key, 1, -6) .. 'job:' .. id
end

-- HSET fields on the record of the job ``payload`` holds; returns its key (nil: no id).
local function note(stats_key, payload, ...)
  local id = job_id(payload)
  if not id then return nil end
  local key = record_key(stats_key, id)
  redis.call('HSET', key, ...)
  return key
end

-- A run's start on the record: processing, by the worker whose processing list is given,
-- since ``now``, one attempt more. Also written by ack and retry for a job they take from
-- the reserved list: it ran within a round trip of its claim, its start never recorded.
local function started(stats_key, payload, processing_key, now)
  local worker = string.match(processing_key, ':processing:(.*)$')
  local key = note(stats_key, payload, 'state', 'processing', 'worker', worker, 'started_ms', now)
  if key then redis.call('HINCRBY', key, 'attempts', 1) end
end

-- The last_error a failed job's new payload carries ('' when none can be read).
local function error_of(payload)
  local ok, doc = pcall(cjson.decode, payload)
  if ok and type(doc) == 'table' and type(doc.last_error) == 'string' then
    return doc.last_error
  end
  return ''
end

-- A finished job's record: its final state, when, why (a dead job; a completed one keeps
-- the error of its last failed attempt, if any), and how long it is kept.
local function finish(stats_key, payload, state, now, ttl, err)
  local key
  if err then
    key = note(stats_key, payload, 'state', state, 'finished_ms', now, 'last_error', err)
  else
    key = note(stats_key, payload, 'state', state, 'finished_ms', now)
  end
  if key and ttl > 0 then redis.call('PEXPIRE', key, ttl) end
end
