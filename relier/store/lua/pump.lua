-- Move due messages from a queue's delayed set to the consuming end of its lists, so
-- they run next. Safe to run from every worker at once: each member moves once.
--
-- KEYS[1] delayed sorted set, KEYS[2..5] queue lists (0, 3, 6, 9).
-- ARGV[1] now (unix ms), ARGV[2] most to move in one call.
-- Returns the number moved.
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[2])
-- RPUSH the latest-due first, so the earliest-due ends up at the consuming end.
for i = #due, 1, -1 do
  local message = due[i]
  local target = KEYS[2]
  local ok, decoded = pcall(cjson.decode, message)
  if ok and type(decoded) == 'table' and type(decoded.properties) == 'table' then
    local p = decoded.properties.priority
    if type(p) == 'number' then
      target = KEYS[2 + math.floor(math.min(math.max(p, 0), 9) / 3)]
    end
  end
  redis.call('RPUSH', target, message)
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return #due
