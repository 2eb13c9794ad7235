-- Take or keep a lease: succeed if the lock is free or already ours, and (re)arm its TTL.
-- KEYS[1] lock key. ARGV[1] holder id, ARGV[2] lease in ms. Returns 1 if held, else 0.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
