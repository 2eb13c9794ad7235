-- Give back everything a worker holds for one queue: each message in its processing
-- list goes to the consuming end of its priority list, oldest delivery first in line,
-- and its fence is dropped so a run still going somewhere cannot ack it.
-- Used on graceful shutdown (nothing was attempted, so no count changes).
--
-- KEYS[1] processing list, KEYS[2] fences hash, KEYS[3..6] queue lists (0, 3, 6, 9).
-- Returns the number of messages given back.
local moved = 0
while true do
  -- The processing list's head is the newest delivery; RPUSHing newest first leaves
  -- the oldest at the consuming end.
  local message = redis.call('LPOP', KEYS[1])
  if not message then break end
  local target = KEYS[3]
  local ok, decoded = pcall(cjson.decode, message)
  if ok and type(decoded) == 'table' then
    local props, headers = decoded.properties, decoded.headers
    if type(props) == 'table' and type(props.priority) == 'number' then
      local p = math.min(math.max(props.priority, 0), 9)
      target = KEYS[3 + math.floor(p / 3)]
    end
    if type(headers) == 'table' and type(headers.id) == 'string' then
      redis.call('HDEL', KEYS[2], headers.id)
    end
  end
  redis.call('RPUSH', target, message)
  moved = moved + 1
end
return moved
