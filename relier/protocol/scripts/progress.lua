-- Store a running task's custom state (update_state), as Celery does: SET with the
-- result TTL and PUBLISH. A ready state (SUCCESS, FAILURE, REVOKED) is never replaced:
-- a late report from a run that was revoked, or outlived its resurrection, loses.
--
-- KEYS[1] result key (also its channel). ARGV[1] result JSON, ARGV[2] TTL in seconds.
-- Returns 1 when stored, 0 when refused.
--!include result_state

local status = stored_status(KEYS[1])
if status ~= nil and READY[status] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
