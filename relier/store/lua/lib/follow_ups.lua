-- send_follow_ups(k, a): what a settled step sends with its settle (chain step, link
-- callbacks, errbacks, the FAILURE of a broken chain's remaining steps, its chord part).
-- Called only after settle_delivery succeeded, so a zombie's settle sends nothing and a
-- repeated settle never sends twice. KEYS from index k, ARGV from index a:
--   ARGV[a] n messages, ARGV[a+1] m results, ARGV[a+2] result TTL, ARGV[a+3] '1' if a chord
--   part follows; KEYS: n target lists, m result keys; ARGV: n messages, m results.
--   Chord part (lib/chord.lua): KEYS .j .t .s .d .c, the callback's list and result key,
--   e errback lists; ARGV task id, member, score, with_results, envelope head and tail,
--   body head and tail, failure head and tail, e, e errback messages.
-- Returns the chord outcome ('' without a chord part).
local function send_follow_ups(k, a)
  local n, m, ttl = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), ARGV[a + 2]
  local with_chord = ARGV[a + 3] == '1'
  a = a + 4
  for i = 0, n - 1 do redis.call('LPUSH', KEYS[k + i], ARGV[a + i]) end
  k, a = k + n, a + n
  for i = 0, m - 1 do
    redis.call('SET', KEYS[k + i], ARGV[a + i], 'EX', ttl)
    redis.call('PUBLISH', KEYS[k + i], ARGV[a + i])
  end
  if not with_chord then return '' end
  return chord_part_return(k + m, a + m, ttl)
end
