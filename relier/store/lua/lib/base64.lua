-- base64(text): standard base64 with padding (Redis's Lua has no encoder). A chord's
-- callback body is only complete inside the script that joins the chord, and kombu
-- sends bodies base64-encoded, so the script encodes it.
local B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local function base64(text)
  local out, n = {}, #text
  for i = 1, n, 3 do
    local a, b, c = string.byte(text, i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = {}
    for j = 3, 0, -1 do
      local k = math.floor(v / 64 ^ j) % 64 + 1
      chars[#chars + 1] = string.sub(B64_ALPHABET, k, k)
    end
    if not b then chars[3], chars[4] = '=', '='
    elseif not c then chars[4] = '=' end
    out[#out + 1] = table.concat(chars)
  end
  return table.concat(out)
end
