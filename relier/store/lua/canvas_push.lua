-- Send one canvas (a chain's first step, a group's members, a chord's header) at once:
-- the messages, the saved GroupResult Celery's GroupResult.restore reads, and a chord's
-- size (with its old dispatch claim dropped, as Celery's set_chord_size does), so a
-- crash can never leave a chord whose size is missing or half its header sent.
--
-- KEYS[1] known-queues set, KEYS[2] celery-taskset-meta-<gid>, KEYS[3] its '.s',
-- KEYS[4] its '.c', KEYS[5..] one target list per message.
-- ARGV[1] TTL in seconds, ARGV[2] GroupResult JSON ('' = none), ARGV[3] chord size
-- ('' = not a chord), ARGV[4..] queue name, message, queue name, message, ...
-- Returns the number of messages sent.
local ttl = ARGV[1]
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ttl) end
if ARGV[3] ~= '' then
  redis.call('DEL', KEYS[4])
  redis.call('SET', KEYS[3], ARGV[3], 'EX', ttl)
end
local n = (#ARGV - 3) / 2
for i = 1, n do
  redis.call('SADD', KEYS[1], ARGV[2 + 2 * i])
  redis.call('LPUSH', KEYS[4 + i], ARGV[3 + 2 * i])
end
return n
