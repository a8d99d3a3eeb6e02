-- Check one API request's key and take a token from that key's bucket, in one round trip.
--
-- KEYS[1] the API key's hash    KEYS[2] its token bucket (hash: `tokens`, `at` in epoch ms)
-- ARGV[1] sha256 (hex) of the secret presented    ARGV[2] tokens added per second    ARGV[3] bucket size
-- Returns false for an unknown, revoked or wrong key, and then takes no token: only the holder of a key can
-- drain its bucket. Otherwise {client_id, 0} within the rate, or {client_id, milliseconds to wait}.
--
-- Lua strings are interned, so `~=` compares two references: it takes the same time wherever the
-- digests differ. Time is the server's, one clock for every API instance.

local key = redis.call('HMGET', KEYS[1], 'client_id', 'secret_sha256', 'revoked_at')
if not key[1] or not key[2] or key[3] then
  return false
end
if key[2] ~= ARGV[1] then
  return false
end

local rate, size = tonumber(ARGV[2]), tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local bucket = redis.call('HMGET', KEYS[2], 'tokens', 'at')
local tokens = size
if bucket[1] then
  tokens = math.min(size, tonumber(bucket[1]) + math.max(0, now - tonumber(bucket[2])) * rate / 1000)
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[2], 'tokens', tostring(tokens), 'at', tostring(now))
-- A bucket left alone this long is full again, which is what a missing bucket means: forget it.
redis.call('PEXPIRE', KEYS[2], math.ceil(size * 1000 / rate) + 1000)
return {key[1], wait}
