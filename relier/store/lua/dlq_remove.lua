-- Delete one DLQ entry for good (`relier dlq purge`) and uncount it.
-- KEYS[1] DLQ list, KEYS[2] the DLQ's count-by-reason hash.
-- ARGV[1] the entry's bytes, ARGV[2] the entry's reason.
-- Returns 1, or 0 if the entry was already gone.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[2], -1)
return 1
