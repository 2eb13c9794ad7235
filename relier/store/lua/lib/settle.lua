-- settle_delivery(processing, message): take a finished delivery's message out of the
-- worker's processing list. False when it is not there any more: Phoenix moved it out
-- (this worker was presumed dead; the re-run's copy carries a new resurrection count,
-- so it never matches these bytes), or this same settle already landed and is being
-- repeated after a lost reply. The caller then writes nothing. This is the fence that
-- refuses a zombie's write: there is no other. Two deliveries sharing a task id (a
-- replayed DLQ entry, a Celery task_id reused) each own their own copy, and each may
-- settle it.
local function settle_delivery(processing, message)
  return redis.call('LREM', processing, 1, message) ~= 0
end
