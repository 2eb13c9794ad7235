-- Take up to ARGV[1] messages for one worker, moving each atomically from a queue
-- list into the worker's processing list, and give each delivery a fencing token.
--
-- KEYS come in groups of seven, one group per queue:
--   processing list, fences hash, stats hash, then the queue's lists in consume order
--   (0, 3, 6, 9).
-- Lists are drained bucket-major, queue-minor, as kombu does: every queue's bucket 0
-- before any queue's bucket 3.
-- Returns a flat array {message, token, group index, ...}.
--!include drain

local GROUP = 7
local want = tonumber(ARGV[1])
local out = {}
local groups = #KEYS / GROUP
local taken = {}

local function token_for(fences, message)
  -- The counter lives in field "" so tokens never repeat, even across redeliveries.
  local token = redis.call('HINCRBY', fences, '', 1)
  local ok, decoded = pcall(cjson.decode, message)
  if ok and type(decoded) == 'table' and type(decoded.headers) == 'table' then
    local id = decoded.headers.id
    if type(id) == 'string' and id ~= '' then
      redis.call('HSET', fences, id, token)
    end
  end
  return token
end

local function fill()
  for offset = 4, 7 do
    for g = 0, groups - 1 do
      local base = g * GROUP
      local processing, fences, source = KEYS[base + 1], KEYS[base + 2], KEYS[base + offset]
      while want > 0 do
        local message = redis.call('LMOVE', source, processing, 'RIGHT', 'LEFT')
        if not message then break end
        out[#out + 1] = message
        out[#out + 1] = token_for(fences, message)
        out[#out + 1] = g
        taken[g] = (taken[g] or 0) + 1
        want = want - 1
      end
      if want == 0 then return end
    end
  end
end

fill()
for g, n in pairs(taken) do
  count_drain(KEYS[g * GROUP + 3], n)
end
return out
