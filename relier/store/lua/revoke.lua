-- Revoke task ids: remember each one in the revoked set (score: now in ms, Redis's
-- clock), and store Celery's REVOKED result for those that have not started, as a
-- Celery worker does on a revoke broadcast (a state that is ready, or that a running
-- task set, is left alone). Entries older than the TTL are pruned in the same step.
--
-- KEYS[1] revoked set, KEYS[1 + i] result key of the i-th id (only read for an id with a
-- REVOKED result: on a cluster the results are stored after, by revoke_result.lua).
-- ARGV[1] revoked-id TTL in seconds, ARGV[2] result TTL in seconds, then per id:
-- ARGV[1 + 2i] task id, ARGV[2 + 2i] its REVOKED result JSON ('' to leave its result alone:
-- the caller runs it now).
-- Returns how many REVOKED results were stored.
--!include result_state

local WAITING = {PENDING = true, RECEIVED = true, RETRY = true, REJECTED = true}
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ttl_s = tonumber(ARGV[1])
local stored = 0
for i = 1, (#ARGV - 2) / 2 do
  local task_id, revoked = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  redis.call('ZADD', KEYS[1], now_ms, task_id)
  if revoked ~= '' then
    local status = stored_status(KEYS[1 + i])
    if status == nil or WAITING[status] then
      redis.call('SET', KEYS[1 + i], revoked, 'EX', ARGV[2])
      redis.call('PUBLISH', KEYS[1 + i], revoked)
      stored = stored + 1
    end
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - ttl_s * 1000)
redis.call('EXPIRE', KEYS[1], ttl_s)
return stored
