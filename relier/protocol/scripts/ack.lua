-- Finish a delivery: store its result (if any) and publish it, forget its fence, mark
-- its idempotency record succeeded (if it has one), and remove the message from the
-- worker's processing list, all at once.
--
-- KEYS[1] processing list, KEYS[2] fences hash, KEYS[3] result key (also the channel),
-- KEYS[4] idempotency record (only for an idempotent call).
-- ARGV[1] message bytes, ARGV[2] fencing token, ARGV[3] task id,
-- ARGV[4] result JSON ('' for none), ARGV[5] result TTL in seconds,
-- ARGV[6] idempotency TTL in seconds (with KEYS[4]).
-- ARGV[7] index in KEYS of the first follow-up key; ARGV[8..] the follow-ups (chain step,
-- callbacks, chord part: lib/follow_ups.lua), sent only if this settle lands.
-- Returns 1, or 0 when the delivery is no longer this worker's (see lib/settle.lua): a
-- newer delivery exists (the worker was declared dead while frozen), so this run must
-- not write its result.
--!include settle
--!include base64
--!include chord
--!include follow_ups

if not settle_delivery(KEYS[1], KEYS[2], ARGV[1], ARGV[3], ARGV[2]) then return 0 end
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[5])
  redis.call('PUBLISH', KEYS[3], ARGV[4])
end
if tonumber(ARGV[7]) == 5 then
  -- The record keeps its own copy of the result: a duplicate dispatch is answered from
  -- it for the whole idempotency TTL, even after the result key itself has expired.
  redis.call('HSET', KEYS[4], 'state', 'succeeded', 'id', ARGV[3], 'result', ARGV[4])
  redis.call('EXPIRE', KEYS[4], ARGV[6])
end
send_follow_ups(tonumber(ARGV[7]), 8)
return 1
