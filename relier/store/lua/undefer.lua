-- Take one deferred message out of its queue's deferred set into the processing list of a
-- worker that can run it, as fetch.lua does for a queue list.
--
-- KEYS[1] deferred sorted set, KEYS[2] processing list, KEYS[3] the queue's stats hash.
-- ARGV[1] message bytes.
-- Returns 1, or 0 when it is gone (another worker took it, or the pump moved it back to
-- the queue at the end of its window).
--!include drain

if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
count_drain(KEYS[3], 1)
return 1
