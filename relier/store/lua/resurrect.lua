-- Recover one message from a dead worker's processing list, if it is still there.
-- Once it has left that list, the dead (or frozen) run can never ack it or store a
-- result: every settle first takes its own copy out of the list (lib/settle.lua).
--
-- KEYS[1] the dead worker's processing list,
-- KEYS[2] target list: the re-queue list, or the DLQ list when quarantining,
-- KEYS[3] result key (written only when quarantining), KEYS[4] the DLQ's count-by-reason
-- hash (counted only when quarantining), KEYS[5] the call's idempotency record (only when
-- quarantining an idempotent call).
-- ARGV[1] message bytes as found, ARGV[2] task id ('' if unknown),
-- ARGV[3] 'requeue' or 'quarantine', ARGV[4] the bytes to push (updated message or
-- DLQ entry), ARGV[5] result JSON ('' for none), ARGV[6] result TTL in seconds,
-- ARGV[7] the DLQ reason when quarantining; when quarantining, ARGV[8] the index in KEYS
-- of the first follow-up key and ARGV[9..] the follow-ups (errbacks, the chain's FAILURE,
-- the chord part: lib/follow_ups.lua), sent with the quarantine.
-- Returns 1 if moved, 0 if another resurrector got there first.
--!include dead_letter
--!include base64
--!include chord
--!include follow_ups

if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if ARGV[3] == 'requeue' then
  -- The consuming end: recovered work goes ahead of new work.
  redis.call('RPUSH', KEYS[2], ARGV[4])
else
  local record = nil
  if tonumber(ARGV[8]) == 6 then record = KEYS[5] end
  record_dead_letter(KEYS[2], KEYS[4], KEYS[3], record, ARGV[4], ARGV[7], ARGV[5], ARGV[6],
                     ARGV[2])
  send_follow_ups(tonumber(ARGV[8]), 9)
end
return 1
