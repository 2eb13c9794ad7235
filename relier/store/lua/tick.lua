-- Send one due tick of a schedule and record it as done, in one atomic step, so that a
-- tick is enqueued once whatever leaders come and go: only the current leader may send
-- (its lease value must still be the lock's), and only a tick newer than the schedule's
-- last recorded one is sent. The enqueue itself is enqueue.lua's, unchanged (admission,
-- idempotency); a tick that admission refuses is recorded as missed, with the reason.
--
-- KEYS[1] the scheduler lock ("<holder> <token>"; on a cluster, the state hash again: see
-- lib/leads.lua), KEYS[2] the schedule's state hash, KEYS[3..] enqueue.lua's keys.
-- ARGV[1] the leader's lock value, ARGV[2] the tick (ms), ARGV[3] now (ms), ARGV[4] 'lock'
-- or 'token' (how the caller's lead is checked), ARGV[5..] enqueue.lua's arguments.
--
-- Returns {'stale'} (not the leader: nothing written), {'done'} (that tick, or a newer
-- one, was already recorded: nothing written), or enqueue.lua's reply.

--!include leads

local function enqueue(KEYS, ARGV)
--!script enqueue
end

local lock, state = KEYS[1], KEYS[2]
local holder, tick, now = ARGV[1], tonumber(ARGV[2]), ARGV[3]
if not still_leads(lock, state, holder, ARGV[4]) then return {'stale'} end
local last = tonumber(redis.call('HGET', state, 'last_tick_ms'))
if last and tick <= last then return {'done'} end

local inner_keys, inner_args = {}, {}
for i = 3, #KEYS do inner_keys[#inner_keys + 1] = KEYS[i] end
for i = 5, #ARGV do inner_args[#inner_args + 1] = ARGV[i] end
local reply = enqueue(inner_keys, inner_args)

if reply[1] == 'rejected' then
  redis.call('HSET', state, 'last_tick_ms', tick, 'last_missed_ms', tick,
             'last_missed_reason', 'admission refused (' .. reply[5] .. ': depth ' ..
             reply[2] .. ', limit ' .. reply[3] .. ')')
  redis.call('HINCRBY', state, 'missed', 1)
else
  redis.call('HSET', state, 'last_tick_ms', tick, 'last_run_ms', tick, 'last_sent_ms', now,
             'last_task_id', reply[3], 'last_status', reply[2])
  redis.call('HINCRBY', state, 'sent', 1)
end
return reply
