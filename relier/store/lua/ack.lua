-- Finish a delivery: store its result (if any) and publish it, mark its idempotency
-- record succeeded (if it has one), remove the message from the worker's processing
-- list, and send its follow-ups (chain step, callbacks, chord part), all at once.
--
-- KEYS[1] processing list, KEYS[2] result key (also the channel),
-- KEYS[3] idempotency record (only for an idempotent call).
-- ARGV[1] message bytes, ARGV[2] task id, ARGV[3] result JSON ('' for none),
-- ARGV[4] result TTL in seconds, ARGV[5] idempotency TTL in seconds (with KEYS[3]).
-- ARGV[6] index in KEYS of the first follow-up key; ARGV[7..] the follow-ups (chain step,
-- callbacks, chord part: lib/follow_ups.lua), sent only if this settle lands.
-- Returns 1, or 0 when the delivery is no longer this worker's (see lib/settle.lua): a
-- newer delivery exists (the worker was declared dead while frozen), so this run must
-- not write its result.
--!include settle
--!include base64
--!include chord
--!include follow_ups

if not settle_delivery(KEYS[1], ARGV[1]) then return 0 end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
  redis.call('PUBLISH', KEYS[2], ARGV[3])
end
if tonumber(ARGV[6]) == 4 then
  -- The record keeps its own copy of the result: a duplicate dispatch is answered from
  -- it for the whole idempotency TTL, even after the result key itself has expired.
  redis.call('HSET', KEYS[3], 'state', 'succeeded', 'id', ARGV[2], 'result', ARGV[3])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
send_follow_ups(tonumber(ARGV[6]), 7)
return 1
