-- Park a delivery in the queue's delayed set until it is due (an eta, a retry delay,
-- a deferral), replacing its bytes with the updated message; a retry also stores the
-- task's interim result (Celery's RETRY state) and publishes it.
--
-- KEYS[1] processing list, KEYS[2] delayed sorted set, KEYS[3] result key (also the
-- channel).
-- ARGV[1] message bytes, ARGV[2] updated message bytes, ARGV[3] due time (unix ms),
-- ARGV[4] result JSON ('' for none), ARGV[5] result TTL in seconds.
-- Returns 1, or 0 when the delivery is no longer this worker's (see lib/settle.lua).
--!include settle

if not settle_delivery(KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[5])
  redis.call('PUBLISH', KEYS[3], ARGV[4])
end
return 1
