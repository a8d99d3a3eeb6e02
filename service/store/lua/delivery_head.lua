-- The event a claimed queue is to attempt next: the earliest queued one, with its body and attempts so far,
-- and the endpoint's configuration if the caller's copy is out of date (a rotated secret signs the very
-- next attempt).
--
-- KEYS[1] pending zset of the queue   KEYS[2] bodies hash   KEYS[3] tries hash   KEYS[4] endpoint hash
-- ARGV[1] the configuration version the caller holds (absent: it holds none)
-- Returns {event id, sequence, body or false, tries JSON or false, stored version, config or false (if
-- ARGV[1] is the stored version)}, or an empty list if nothing is queued.

local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then
  return {}
end
local stored = redis.call('HMGET', KEYS[4], 'version', 'config')
local version = stored[1] or '0'
local config = false
if ARGV[1] ~= version then
  config = stored[2]
end
return {
  first[1], first[2], redis.call('HGET', KEYS[2], first[1]), redis.call('HGET', KEYS[3], first[1]),
  version, config,
}
