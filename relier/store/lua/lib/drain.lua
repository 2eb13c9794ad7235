-- count_drain(stats, n): n messages of one queue were just taken by a worker.
-- Keeps the total (`fetched`) and a drain rate in messages per second, measured over
-- windows of at least a second (`rate`, `window_start_ms`, `window_count`). Admission
-- control estimates `retry_after` from that rate (see enqueue.lua).
local function count_drain(stats, n)
  redis.call('HINCRBY', stats, 'fetched', n)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local w = redis.call('HMGET', stats, 'window_start_ms', 'window_count')
  local start, counted = tonumber(w[1]), (tonumber(w[2]) or 0) + n
  if not start or now - start > 2000 then
    -- First take, or the first after an idle spell: the gap says nothing about how fast
    -- the queue drains now, so start measuring afresh (the last rate is kept meanwhile).
    redis.call('HSET', stats, 'window_start_ms', now, 'window_count', n)
  elseif now - start >= 1000 then
    redis.call('HSET', stats, 'rate', counted * 1000 / (now - start),
               'window_start_ms', now, 'window_count', 0)
  else
    redis.call('HSET', stats, 'window_count', counted)
  end
end
