-- Rebuild a DLQ's count-by-reason hash from its entries. Needed only when the counts
-- and the list disagree: entries written before the counts existed, or by an older
-- worker. The reason is found by pattern rather than by decoding each entry: an entry
-- is compact JSON whose top-level "reason" comes before any nested object, and a quote
-- inside a string value is always escaped, so the first match is the field.
--
-- KEYS[1] DLQ list, KEYS[2] count-by-reason hash. Returns the number of entries counted.
redis.call('DEL', KEYS[2])
local total = redis.call('LLEN', KEYS[1])
local step = 1000
for start = 0, total - 1, step do
  for _, entry in ipairs(redis.call('LRANGE', KEYS[1], start, start + step - 1)) do
    local reason = string.match(entry, '"reason":"([^"]*)"') or 'unknown'
    redis.call('HINCRBY', KEYS[2], reason, 1)
  end
end
return total
