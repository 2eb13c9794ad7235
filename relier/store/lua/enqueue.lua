-- Enqueue one batch of messages for one queue, deciding admission and idempotency in
-- the same atomic step, so two producers racing on one call can never both enqueue it.
--
-- KEYS[1] target: the queue's list for this priority, or its delayed set when due later
-- KEYS[2] the known-queues set (or, on a cluster, where that set is in another slot, the
-- stats hash again: the caller registers the queue itself), KEYS[3] the queue's stats hash
-- KEYS[4..7] the queue's four priority lists, KEYS[8] its delayed set (for the depth)
-- KEYS[9..] one idempotency record per message, only when the batch is idempotent
-- ARGV[1] queue name, ARGV[2] due time in ms ('' = now), ARGV[3] depth limit (0 = none)
-- ARGV[4] largest used_memory/maxmemory fraction accepted (0 = no guard)
-- ARGV[5] idempotency TTL in seconds (0 = not idempotent)
-- ARGV[6..] message, task id, message, task id, ...
--
-- Returns {'rejected', depth, limit, retry_after_ms, 'depth'|'memory'} with nothing
-- written, or {'ok', status, id, result, status, id, result, ...} where status is
-- 'new' (enqueued), 'pending' (an earlier dispatch will run it: id is that task's) or
-- 'done' (it already ran: result is the stored result, '' when it kept none).

-- A drain rate older than this is not news: the queue is not being drained now.
local RATE_FRESH_MS = 5000
-- retry_after bounds: nothing to wait for below the first, no estimate past the second.
local MIN_RETRY_MS, MAX_RETRY_MS, NO_DRAIN_RETRY_MS = 500, 300000, 5000

local queue, due, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local memory_limit, idem_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local count = (#ARGV - 5) / 2
local stats = KEYS[3]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function waiting()
  local depth = redis.call('ZCARD', KEYS[8])
  for i = 4, 7 do depth = depth + redis.call('LLEN', KEYS[i]) end
  return depth
end

local function retry_after_ms(excess)
  local s = redis.call('HMGET', stats, 'rate', 'window_start_ms')
  local rate, window_start = tonumber(s[1]), tonumber(s[2])
  if not rate or rate <= 0 or not window_start or now_ms() - window_start > RATE_FRESH_MS then
    return NO_DRAIN_RETRY_MS
  end
  return math.min(math.max(math.floor(excess * 1000 / rate), MIN_RETRY_MS), MAX_RETRY_MS)
end

local function reject(depth, why, excess, refused)
  redis.call('HINCRBY', stats, 'rejected', refused)
  return {'rejected', depth, limit, retry_after_ms(excess), why}
end

-- 1. Which calls are new? (a duplicate inside this batch counts as pending too)
local out, fresh, claimed = {'ok'}, 0, {}
for i = 1, count do
  local id = ARGV[5 + 2 * i]
  local status, owner, result = 'new', id, ''
  if idem_ttl > 0 then
    local record = KEYS[8 + i]
    if claimed[record] then
      status, owner = 'pending', claimed[record]
    else
      local r = redis.call('HMGET', record, 'state', 'id', 'result')
      if r[1] == 'succeeded' then
        status, owner, result = 'done', r[2], r[3] or ''
      elseif r[1] == 'pending' or r[1] == 'running' then
        status, owner = 'pending', r[2]
      else
        claimed[record] = id
      end
    end
    if status ~= 'new' then redis.call('HINCRBY', stats, 'idempotent_hits', 1) end
  end
  if status == 'new' then fresh = fresh + 1 end
  out[#out + 1], out[#out + 2], out[#out + 3] = status, owner, result
end
if fresh == 0 then return out end

-- 2. Admission: all of the batch's new calls fit, or none is enqueued.
if limit > 0 then
  local depth = waiting()
  if depth + fresh > limit then return reject(depth, 'depth', depth + fresh - limit, fresh) end
end
if memory_limit > 0 then
  local info = redis.call('INFO', 'memory')
  local used = tonumber(string.match(info, 'used_memory:(%d+)'))
  local max = tonumber(string.match(info, 'maxmemory:(%d+)'))
  if max and max > 0 and used >= max * memory_limit then
    return reject(waiting(), 'memory', fresh, fresh)
  end
end

-- 3. Enqueue the new ones and record them as pending. A record outlives the wait of a
-- delayed message: expiring first would let a second dispatch enqueue the call again.
local record_ttl = idem_ttl
if due ~= '' then
  record_ttl = record_ttl + math.max(0, math.ceil((tonumber(due) - now_ms()) / 1000))
end
for i = 1, count do
  if out[2 + 3 * (i - 1)] == 'new' then
    local message = ARGV[4 + 2 * i]
    if due == '' then
      redis.call('LPUSH', KEYS[1], message)
    else
      redis.call('ZADD', KEYS[1], due, message)
    end
    if idem_ttl > 0 then
      redis.call('HSET', KEYS[8 + i], 'state', 'pending', 'id', ARGV[5 + 2 * i])
      redis.call('EXPIRE', KEYS[8 + i], record_ttl)
    end
  end
end
if KEYS[2] ~= stats then redis.call('SADD', KEYS[2], queue) end
return out
