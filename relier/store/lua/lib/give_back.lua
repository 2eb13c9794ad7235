-- give_back(message, lists): put a message this worker held back at the consuming end of
-- its priority list (lists: the queue's four lists, 0, 3, 6, 9). Nothing was attempted,
-- so no count changes.
local function give_back(message, lists)
  local target = lists[1]
  local ok, decoded = pcall(cjson.decode, message)
  if ok and type(decoded) == 'table' then
    local props = decoded.properties
    if type(props) == 'table' and type(props.priority) == 'number' then
      local p = math.min(math.max(props.priority, 0), 9)
      target = lists[1 + math.floor(p / 3)]
    end
  end
  redis.call('RPUSH', target, message)
end
