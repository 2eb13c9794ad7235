-- Take a named lock if it is free, with a fencing token larger than any before it.
--
-- KEYS[1] the lock (its value is "<holder> <token>"; also the channel that announces a
-- release), KEYS[2] the lock's fence counter (never expires, so tokens only grow).
-- ARGV[1] holder id, ARGV[2] lease in ms.
-- Returns {token, 0} when taken, or {0, pttl} when someone else holds it (pttl is how
-- long their lease has left, so a waiter knows when to look again at the latest).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
return {token, 0}
