-- The status of a stored result, or nil when there is none or it cannot be read (the
-- bytes are whatever someone stored there: never trusted to be JSON).
local function stored_status(result_key)
  local raw = redis.call('GET', result_key)
  if not raw then return nil end
  local ok, meta = pcall(cjson.decode, raw)
  if not ok or type(meta) ~= 'table' or type(meta['status']) ~= 'string' then return nil end
  return meta['status']
end

local READY = {SUCCESS = true, FAILURE = true, REVOKED = true}
