-- Extend a lock's lease, only if the caller still holds it.
-- KEYS[1] the lock. ARGV[1] the holder's value ("<holder> <token>"), ARGV[2] new lease in ms.
-- Returns 1, or 0 when the lease had expired or another holder has it now.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
