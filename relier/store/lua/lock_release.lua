-- Release a lock, only if the caller still holds it (compare-and-delete), and wake the
-- waiters. KEYS[1] the lock. ARGV[1] the holder's value ("<holder> <token>").
-- Returns 1, or 0 when the lease had expired or another holder has it now.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', KEYS[1], 'released')
return 1
