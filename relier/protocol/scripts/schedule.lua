-- Park a delivery in the queue's delayed set until it is due (an eta, a retry delay,
-- a deferral), replacing its bytes with the updated message.
--
-- KEYS[1] processing list, KEYS[2] fences hash, KEYS[3] delayed sorted set.
-- ARGV[1] message bytes, ARGV[2] fencing token, ARGV[3] task id,
-- ARGV[4] updated message bytes, ARGV[5] due time (unix ms).
-- Returns 1, or 0 when the token is stale (see ack.lua).
redis.call('LREM', KEYS[1], 1, ARGV[1])
if ARGV[3] ~= '' then
  if redis.call('HGET', KEYS[2], ARGV[3]) ~= ARGV[2] then return 0 end
  redis.call('HDEL', KEYS[2], ARGV[3])
end
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
return 1
