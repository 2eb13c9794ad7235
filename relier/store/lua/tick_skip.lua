-- Record ticks of a schedule that will not be sent, only if the caller still leads.
--
-- KEYS[1] the scheduler lock (on a cluster: the state hash again, see lib/leads.lua),
-- KEYS[2] the schedule's state hash.
-- ARGV[1] the leader's lock value, ARGV[2] 'baseline' or 'missed', ARGV[3] a tick (ms),
-- ARGV[4] how many ticks were missed, ARGV[5] why, ARGV[6] 'lock' or 'token' (how the
-- caller's lead is checked: lib/leads.lua).
-- 'baseline': a schedule seen for the first time starts counting from ARGV[3] (nothing
-- before it is due). 'missed': the ticks up to ARGV[3] are done, ARGV[4] of them missed.
-- Returns 1 (written), 0 (not the leader: nothing written), -1 (nothing to do).

--!include leads

local lock, state = KEYS[1], KEYS[2]
if not still_leads(lock, state, ARGV[1], ARGV[6]) then return 0 end
local through = tonumber(ARGV[3])
if ARGV[2] == 'baseline' then
  return redis.call('HSETNX', state, 'last_tick_ms', through) == 1 and 1 or -1
end
local last = tonumber(redis.call('HGET', state, 'last_tick_ms'))
if last and through <= last then return -1 end
redis.call('HSET', state, 'last_tick_ms', through, 'last_missed_ms', through,
           'last_missed_reason', ARGV[5])
redis.call('HINCRBY', state, 'missed', tonumber(ARGV[4]))
return 1
