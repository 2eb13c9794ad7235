-- On a Redis Cluster: end a delivery in its queue's slot, and leave what it does beyond
-- that slot (result, idempotency record, DLQ entry, follow-ups, a move to another queue)
-- in the queue's outbox, in the same atomic step. The outbox entry is applied right
-- after by the caller, or later by a sweep if the caller dies first
-- (relier/store/outbox.py), so a settle that lands can never lose its effects.
--
-- KEYS[1] the processing list the message sits in, KEYS[2] the queue's outbox list.
-- ARGV[1] message bytes, ARGV[2] the outbox entry ('' when there is nothing to do).
-- Returns 1, or 0 when the message is no longer there (see lib/settle.lua): a zombie's
-- settle, or a repeat of one that landed, writes nothing.
--!include settle

if not settle_delivery(KEYS[1], ARGV[1]) then return 0 end
if ARGV[2] ~= '' then redis.call('LPUSH', KEYS[2], ARGV[2]) end
return 1
