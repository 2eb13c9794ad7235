-- A worker is about to run an idempotent task: has that call already succeeded?
--
-- KEYS[1] the call's idempotency record. ARGV[1] this delivery's task id,
-- ARGV[2] the record's TTL in seconds.
-- Returns {'done', owner id, stored result} when an earlier run succeeded (the worker
-- acks without running); {'busy', owner id} while another delivery of the call runs
-- (a second dispatch that outlived an expired record: it waits, then finds 'done');
-- else marks the record running under this id and returns {'run'}. A record that
-- expired or was dropped after a failure is claimed afresh.
local r = redis.call('HMGET', KEYS[1], 'state', 'id', 'result')
if r[1] == 'succeeded' then
  return {'done', r[2], r[3] or ''}
end
if r[1] == 'running' and r[2] ~= ARGV[1] then
  return {'busy', r[2]}
end
redis.call('HSET', KEYS[1], 'state', 'running', 'id', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {'run'}
