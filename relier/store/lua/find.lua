-- Look for a task id in one slice of a list or sorted set, for `relier inspect task`.
-- Read-only. The caller walks a long key slice by slice, so that no single call holds
-- the server for long; the id is matched as plain text (the caller decodes the element
-- to make sure it is the task's own id, not e.g. a child's root_id).
--
-- KEYS[1] a list or sorted set. ARGV[1] the task id, ARGV[2] first index, ARGV[3] how
-- many elements to look at.
-- Returns {index, element, score} for the first element containing the id ('' score for
-- a list), or an empty array.
local first = tonumber(ARGV[2])
local last = first + tonumber(ARGV[3]) - 1
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'list' then
  for i, element in ipairs(redis.call('LRANGE', KEYS[1], first, last)) do
    if string.find(element, ARGV[1], 1, true) then
      return {first + i - 1, element, ''}
    end
  end
elseif kind == 'zset' then
  local found = redis.call('ZRANGE', KEYS[1], first, last, 'WITHSCORES')
  for i = 1, #found, 2 do
    if string.find(found[i], ARGV[1], 1, true) then
      return {first + (i - 1) / 2, found[i], found[i + 1]}
    end
  end
end
return {}
