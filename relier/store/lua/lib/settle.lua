-- settle_delivery(processing, fences, message, task_id, token): take a finished delivery's
-- message out of the worker's processing list. False when it is not there any more:
-- Phoenix moved it out (this worker was presumed dead; the re-run's copy carries a new
-- resurrection count, so it never matches these bytes), or this same settle already
-- landed and is being repeated after a lost reply. The caller then writes nothing.
-- The list, not the fence, decides: two deliveries sharing a task id (a replayed DLQ
-- entry, a Celery task_id reused) each own their own copy, and each may settle it.
local function settle_delivery(processing, fences, message, task_id, token)
  if redis.call('LREM', processing, 1, message) == 0 then return false end
  if task_id ~= '' and redis.call('HGET', fences, task_id) == token then
    redis.call('HDEL', fences, task_id)
  end
  return true
end
