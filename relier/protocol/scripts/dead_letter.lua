-- Move a delivery to the dead-letter queue with its entry, and store its final result.
--
-- KEYS[1] processing list, KEYS[2] fences hash, KEYS[3] DLQ list, KEYS[4] result key,
-- KEYS[5] the DLQ's count-by-reason hash, KEYS[6] idempotency record (only for an
-- idempotent call).
-- ARGV[1] message bytes, ARGV[2] fencing token, ARGV[3] task id ('' if unknown),
-- ARGV[4] DLQ entry JSON, ARGV[5] result JSON ('' for none), ARGV[6] result TTL seconds,
-- ARGV[7] the entry's reason.
-- ARGV[8] index in KEYS of the first follow-up key; ARGV[9..] the follow-ups (errbacks,
-- the FAILURE of the chain's remaining steps, the chord part: lib/follow_ups.lua).
-- Returns 1, or 0 when the delivery is no longer this worker's (see lib/settle.lua).
--!include settle
--!include dead_letter
--!include base64
--!include chord
--!include follow_ups

if not settle_delivery(KEYS[1], KEYS[2], ARGV[1], ARGV[3], ARGV[2]) then return 0 end
local record = nil
if tonumber(ARGV[8]) == 7 then record = KEYS[6] end
record_dead_letter(KEYS[3], KEYS[5], KEYS[4], record, ARGV[4], ARGV[7], ARGV[5], ARGV[6],
                   ARGV[3])
send_follow_ups(tonumber(ARGV[8]), 9)
return 1
