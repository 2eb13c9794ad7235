-- still_leads(lock, state, holder, mode): whether the caller may move a schedule on.
-- 'lock': the scheduler lock still holds the caller's value ("<worker> <token>").
-- 'token' (on a Redis Cluster, where the lock lives in another slot than the schedule):
-- no newer leader has moved this schedule yet: the caller's fencing token (the number
-- ending its lock value) is at least the highest the schedule's state has seen, and is
-- recorded there. A stale leader may then still send a tick nobody sent (each tick is
-- recorded with its send, so it is sent once either way), but never after a newer leader
-- has touched that schedule.
local function still_leads(lock, state, holder, mode)
  if mode ~= 'token' then return redis.call('GET', lock) == holder end
  local token = tonumber(string.match(holder, '(%d+)$'))
  if not token then return false end
  local seen = tonumber(redis.call('HGET', state, 'leader_token'))
  if seen and seen > token then return false end
  redis.call('HSET', state, 'leader_token', token)
  return true
end
