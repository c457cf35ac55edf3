-- requeue_dead: send dead-letter entries back to their queue with attempts reset.
-- KEYS[1] dead-letter list   KEYS[2] pending list   KEYS[3] stats hash
-- ARGV pairs: the entry as read from the dead-letter list, the job to enqueue in its place
-- Returns how many moved; an entry already gone (a racing requeue or purge) is skipped.
local moved = 0
for i = 1, #ARGV, 2 do
  if redis.call('LREM', KEYS[1], -1, ARGV[i]) > 0 then
    redis.call('LPUSH', KEYS[2], ARGV[i + 1])
    local record = note(KEYS[3], ARGV[i + 1], 'state', 'pending', 'last_error', '')
    if record then redis.call('PERSIST', record) end
    moved = moved + 1
  end
end
if moved > 0 then redis.call('HINCRBY', KEYS[3], 'requeued', moved) end
return moved
