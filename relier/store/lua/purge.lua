-- Empty a queue: delete its lists (every priority) and, when asked, its delayed set.
-- Messages workers hold (processing lists) are not touched: they are running.
--
-- KEYS the lists (and the delayed set) to empty. Returns how many messages went.
local removed = 0
for _, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key).ok
  if kind == 'list' then
    removed = removed + redis.call('LLEN', key)
  elseif kind == 'zset' then
    removed = removed + redis.call('ZCARD', key)
  end
  redis.call('DEL', key)
end
return removed
