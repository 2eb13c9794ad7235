-- Finish a delivery: store its result (if any) and publish it, forget its fence, and
-- remove the message from the worker's processing list, all at once.
--
-- KEYS[1] processing list, KEYS[2] fences hash, KEYS[3] result key (also the channel).
-- ARGV[1] message bytes, ARGV[2] fencing token, ARGV[3] task id,
-- ARGV[4] result JSON ('' for none), ARGV[5] result TTL in seconds.
-- Returns 1, or 0 when the token is stale: a newer delivery of this task exists (the
-- worker was declared dead while frozen), so this run must not write its result.
redis.call('LREM', KEYS[1], 1, ARGV[1])
if ARGV[3] ~= '' then
  if redis.call('HGET', KEYS[2], ARGV[3]) ~= ARGV[2] then return 0 end
  redis.call('HDEL', KEYS[2], ARGV[3])
end
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[5])
  redis.call('PUBLISH', KEYS[3], ARGV[4])
end
return 1
