-- drop_dead: delete chosen entries from the dead-letter list, for good (an operator's
-- choice; purge-dlq does it to the whole list).
-- KEYS[1] dead-letter list   KEYS[2] stats hash
-- ARGV[1..] entries as read from the dead-letter list
-- Returns how many were deleted; an entry already gone (requeued or purged) is skipped.
-- The job's record goes with it (lib.lua).
local dropped = 0
for i = 1, #ARGV do
  if redis.call('LREM', KEYS[1], -1, ARGV[i]) > 0 then
    local id = job_id(ARGV[i])
    if id then redis.call('DEL', record_key(KEYS[2], id)) end
    dropped = dropped + 1
  end
end
if dropped > 0 then redis.call('HINCRBY', KEYS[2], 'dropped', dropped) end
return dropped
