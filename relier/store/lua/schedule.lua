-- Park a delivery in the queue's delayed set until it is due (an eta, a retry delay,
-- a deferral), replacing its bytes with the updated message; a retry also stores the
-- task's interim result (Celery's RETRY state) and publishes it.
--
-- KEYS[1] processing list, KEYS[2] fences hash, KEYS[3] delayed sorted set,
-- KEYS[4] result key (also the channel).
-- ARGV[1] message bytes, ARGV[2] fencing token, ARGV[3] task id,
-- ARGV[4] updated message bytes, ARGV[5] due time (unix ms),
-- ARGV[6] result JSON ('' for none), ARGV[7] result TTL in seconds.
-- Returns 1, or 0 when the delivery is no longer this worker's (see lib/settle.lua).
--!include settle

if not settle_delivery(KEYS[1], KEYS[2], ARGV[1], ARGV[3], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
if ARGV[6] ~= '' then
  redis.call('SET', KEYS[4], ARGV[6], 'EX', ARGV[7])
  redis.call('PUBLISH', KEYS[4], ARGV[6])
end
return 1
