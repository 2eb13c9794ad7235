-- Give back everything a worker holds for one queue: each message in its processing
-- list goes to the consuming end of its priority list, oldest delivery first in line
-- (a run still going somewhere cannot settle it then: its copy left the list).
-- Used on graceful shutdown (nothing was attempted, so no count changes).
--
-- KEYS[1] processing list, KEYS[2..5] queue lists (0, 3, 6, 9).
-- Returns the number of messages given back.
--!include give_back

local lists = {KEYS[2], KEYS[3], KEYS[4], KEYS[5]}
local moved = 0
while true do
  -- The processing list's head is the newest delivery; RPUSHing newest first leaves
  -- the oldest at the consuming end.
  local message = redis.call('LPOP', KEYS[1])
  if not message then break end
  give_back(message, lists)
  moved = moved + 1
end
return moved
