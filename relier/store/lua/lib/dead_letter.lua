-- record_dead_letter(dlq, reasons, result_key, record, entry, reason, result, ttl, task_id):
-- the part every dead-lettering shares (a failed delivery, a poison quarantine). Push the
-- entry and count its reason; store and publish the final result ('' for none) as
-- Celery's backend does; and drop the call's idempotency record (nil when not
-- idempotent) unless a later dispatch owns it, so that the next dispatch may run it.
local function record_dead_letter(dlq, reasons, result_key, record, entry, reason, result,
                                  ttl, task_id)
  redis.call('LPUSH', dlq, entry)
  redis.call('HINCRBY', reasons, reason, 1)
  if result ~= '' then
    redis.call('SET', result_key, result, 'EX', ttl)
    redis.call('PUBLISH', result_key, result)
  end
  if record and redis.call('HGET', record, 'id') == task_id then
    redis.call('DEL', record)
  end
end
