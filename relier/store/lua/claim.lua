-- Give a fencing token to a message that BLMOVE already put in a processing list.
-- KEYS[1] fences hash, KEYS[2] the queue's stats hash.
-- ARGV[1] task id ('' when the message has none).
--!include drain

count_drain(KEYS[2], 1)
local token = redis.call('HINCRBY', KEYS[1], '', 1)
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], token)
end
return token
