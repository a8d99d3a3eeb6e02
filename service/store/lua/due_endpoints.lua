-- The endpoints whose entry in the due index has come, each with its mark (see touch_due_endpoints.lua).
--
-- KEYS[1] due index zset   KEYS[2] marks hash
-- ARGV[1] now (ms)   ARGV[2] at most this many
-- Returns {endpoint id, mark, endpoint id, mark, ...} (mark '' if it has none).

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local found = {}
for _, endpoint_id in ipairs(due) do
  found[#found + 1] = endpoint_id
  found[#found + 1] = redis.call('HGET', KEYS[2], endpoint_id) or ''
end
return found
