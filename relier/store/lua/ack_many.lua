-- Finish several plain deliveries of one processing list at once: for each message,
-- remove it from the list and, only if that landed, store and publish its result (if
-- any). What ack.lua does for an ack without an idempotency record or follow-ups, with
-- one call, one reply and one Lua invocation for the whole batch instead of one each.
--
-- KEYS[1] processing list; KEYS[1 + i] the result key (also the channel) of message i.
-- ARGV[1] result TTL in seconds; ARGV[2i] message i's bytes, ARGV[2i + 1] its result
-- JSON ('' for none).
-- Returns one integer per message, in order: 1 landed, 0 when that message is no longer
-- this worker's (see lib/settle.lua). Each message is fenced on its own: one that is
-- gone writes nothing, and the others land.
--!include settle

local landed = {}
for i = 1, #KEYS - 1 do
  local result = ARGV[2 * i + 1]
  if settle_delivery(KEYS[1], ARGV[2 * i]) then
    if result ~= '' then
      redis.call('SET', KEYS[1 + i], result, 'EX', ARGV[1])
      redis.call('PUBLISH', KEYS[1 + i], result)
    end
    landed[i] = 1
  else
    landed[i] = 0
  end
end
return landed
