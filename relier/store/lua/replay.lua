-- Take one entry out of a DLQ and put its message back at the tail of its queue list.
-- KEYS[1] DLQ list, KEYS[2] target queue list, KEYS[3] the DLQ's count-by-reason hash.
-- ARGV[1] the entry's bytes, ARGV[2] the message to enqueue, ARGV[3] the entry's reason.
-- Returns 1, or 0 if the entry was already gone (replayed or purged by someone else).
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[3], ARGV[3], -1)
return 1
