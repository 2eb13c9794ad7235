-- chord_part_return(k, a, ttl): record one header task's result in its chord's join,
-- the structure Celery's Redis backend uses (celery/backends/redis.py, 5.7): `.j` sorted
-- set of "[1, tid, state, result]" by group_index, `.d` set of "tid:index" against
-- duplicates, `.s` chord size set by the producer, `.t` extra size, `.c` dispatch claim
-- ('done' once dispatched). When this part completes the chord and no one (a Celery
-- worker included) holds the claim, send the callback with the joined results here, in
-- the same script, and mark the chord done, so it calls back exactly once.
-- A part in FAILURE/REVOKED fails the chord as Celery does: the callback's result is a
-- ChordError naming the part, its link_error errbacks are sent, `.s` is dropped.
-- Layout: see lib/follow_ups.lua. Returns 'recorded', 'duplicate', 'called', 'failed'.
local function chord_member_parts(member)
  return string.match(member, '^%[%s*1%s*,%s*"([^"]*)"%s*,%s*"([^"]*)"%s*,%s*(.-)%s*%]$')
end

local function chord_error_text(tid, value)
  local ok, exc = pcall(cjson.decode, value)
  if ok and type(exc) == 'table' and type(exc.exc_type) == 'string' then
    local shown = {}
    for _, v in ipairs(type(exc.exc_message) == 'table' and exc.exc_message or {}) do
      shown[#shown + 1] = cjson.encode(v)
    end
    value = exc.exc_type .. '(' .. table.concat(shown, ', ') .. ')'
  end
  return 'Dependency ' .. tid .. ' raised ' .. value
end

local function chord_fail(k, a, tid, value, ttl)
  local text = chord_error_text(tid, value)
  local failure = ARGV[a + 8] .. cjson.encode(text) .. ARGV[a + 9]
  redis.call('SET', KEYS[k + 6], failure, 'EX', ttl)
  redis.call('PUBLISH', KEYS[k + 6], failure)
  local e = tonumber(ARGV[a + 10])
  for i = 1, e do redis.call('LPUSH', KEYS[k + 6 + i], ARGV[a + 10 + i]) end
  redis.call('DEL', KEYS[k + 2])
  redis.call('SET', KEYS[k + 4], 'done', 'EX', 300)
  return 'failed'
end

local function chord_part_return(k, a, ttl)
  local jkey, tkey, skey, dkey, ckey = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local tid, score = ARGV[a], ARGV[a + 2]
  local function of_type(key, wanted)
    local t = redis.call('TYPE', key)['ok']
    return t == 'none' or t == wanted
  end
  if not (of_type(jkey, 'zset') and of_type(dkey, 'set') and of_type(ckey, 'string')) then
    -- Not Celery's layout (written by something else): fail the chord rather than the
    -- settle, which would otherwise be refused on every delivery of this step.
    return chord_fail(k, a, '?', 'a chord join key of the wrong type', ttl)
  end
  if redis.call('GET', ckey) == 'done' then return 'duplicate' end
  local mark = tid .. ':' .. score
  if redis.call('SISMEMBER', dkey, mark) == 1 then return 'duplicate' end
  redis.call('ZADD', jkey, score, ARGV[a + 1])
  redis.call('SADD', dkey, mark)
  for _, key in ipairs({jkey, tkey, skey, dkey}) do redis.call('EXPIRE', key, ttl) end
  local size = tonumber(redis.call('GET', skey) or '')
  -- Read as hostile: a value that is not a number counts as none.
  local total = (size or 0) + (tonumber(redis.call('GET', tkey) or '') or 0)
  if not size or redis.call('ZCARD', jkey) ~= total or redis.call('EXISTS', ckey) == 1 then
    return 'recorded'
  end
  local values = {}
  for _, member in ipairs(redis.call('ZRANGE', jkey, 0, -1)) do
    local part, state, value = chord_member_parts(member)
    if not part then return chord_fail(k, a, '?', 'an unreadable chord member', ttl) end
    if state == 'FAILURE' or state == 'REVOKED' then return chord_fail(k, a, part, value, ttl) end
    values[#values + 1] = value
  end
  local body = ARGV[a + 6]
  if ARGV[a + 3] == '1' then body = body .. '[' .. table.concat(values, ', ') .. ']' .. ARGV[a + 7] end
  redis.call('LPUSH', KEYS[k + 5], ARGV[a + 4] .. '"' .. base64(body) .. '"' .. ARGV[a + 5])
  redis.call('DEL', jkey, tkey, skey, dkey)
  redis.call('SET', ckey, 'done', 'EX', 300)
  return 'called'
end
