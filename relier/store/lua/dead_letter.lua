-- Move a delivery to the dead-letter queue with its entry, store its final result, and
-- send its follow-ups (errbacks, the FAILURE of a chain's remaining steps, the chord part).
--
-- KEYS[1] processing list, KEYS[2] DLQ list, KEYS[3] result key,
-- KEYS[4] the DLQ's count-by-reason hash, KEYS[5] idempotency record (only for an
-- idempotent call).
-- ARGV[1] message bytes, ARGV[2] task id ('' if unknown), ARGV[3] DLQ entry JSON,
-- ARGV[4] result JSON ('' for none), ARGV[5] result TTL seconds, ARGV[6] the entry's reason.
-- ARGV[7] index in KEYS of the first follow-up key; ARGV[8..] the follow-ups
-- (lib/follow_ups.lua).
-- Returns 1, or 0 when the delivery is no longer this worker's (see lib/settle.lua).
--!include settle
--!include dead_letter
--!include base64
--!include chord
--!include follow_ups

if not settle_delivery(KEYS[1], ARGV[1]) then return 0 end
local record = nil
if tonumber(ARGV[7]) == 6 then record = KEYS[5] end
record_dead_letter(KEYS[2], KEYS[4], KEYS[3], record, ARGV[3], ARGV[6], ARGV[4], ARGV[5],
                   ARGV[2])
send_follow_ups(tonumber(ARGV[7]), 8)
return 1
