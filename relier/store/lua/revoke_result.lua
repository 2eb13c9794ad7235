-- On a Redis Cluster, the second step of revoke.lua for one id (its result key has a slot
-- of its own): store Celery's REVOKED result unless the task has started or finished.
-- The id is already in the revoked set, so no worker starts it after this.
-- KEYS[1] the result key. ARGV[1] the REVOKED result JSON, ARGV[2] result TTL in seconds.
-- Returns 1 if stored.
--!include result_state

local WAITING = {PENDING = true, RECEIVED = true, RETRY = true, REJECTED = true}
local status = stored_status(KEYS[1])
if status ~= nil and not WAITING[status] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
