-- Take up to ARGV[1] messages for one worker, moving each atomically from a queue
-- list into the worker's processing list. Nothing else is done per message: the
-- processing list is the delivery's only record (and the fence a settle checks).
--
-- KEYS come in groups of six, one group per queue:
--   processing list, stats hash, then the queue's lists in consume order (0, 3, 6, 9).
-- Lists are drained bucket-major, queue-minor, as kombu does: every queue's bucket 0
-- before any queue's bucket 3.
-- Returns a flat array {message, group index, ...}.
--!include drain

local GROUP = 6
local want = tonumber(ARGV[1])
local out = {}
local groups = #KEYS / GROUP
local taken = {}

local function fill()
  for offset = 3, 6 do
    for g = 0, groups - 1 do
      local base = g * GROUP
      local processing, source = KEYS[base + 1], KEYS[base + offset]
      while want > 0 do
        local message = redis.call('LMOVE', source, processing, 'RIGHT', 'LEFT')
        if not message then break end
        out[#out + 1] = message
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
  count_drain(KEYS[g * GROUP + 2], n)
end
return out
