-- Reserve one token of a task's global rate limit (a token bucket kept as GCRA: one
-- number, the theoretical arrival time of the next token). Every call takes a token,
-- now or in the future, and says how long to wait for it, so N workers that meet a
-- backlog spread it over time instead of all retrying at once.
--
-- KEYS[1] the task's bucket.
-- ARGV[1] microseconds between tokens, ARGV[2] burst (tokens that may be taken at once).
-- Returns the wait in microseconds until the reserved token is due (0: run now).
-- The server's clock is the only clock, so workers with skewed clocks agree.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local due = tat - (burst - 1) * interval
if due < now then due = now end
local next_tat = tat + interval
-- The bucket forgets itself once it is full again (idle keys do not pile up).
local ttl_ms = math.ceil((next_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl_ms)
return due - now
