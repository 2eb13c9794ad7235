-- Drop an idempotent call's record unless a later dispatch owns it (the cluster form of
-- what lib/dead_letter.lua does in the same step as the DLQ push).
-- KEYS[1] the record. ARGV[1] the task id the dead-lettered delivery ran under.
-- Returns 1 if dropped.
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
