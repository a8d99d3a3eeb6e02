-- Claim the due queues of one endpoint for one relay instance (each claimed queue's score moves to
-- now + lease), unless the instance's copy of the endpoint's configuration is out of date or the circuit
-- breaker holds the endpoint back; and say when the endpoint is due next, for the due index.
--
-- KEYS[1] due zset of the endpoint   KEYS[2] endpoint hash   KEYS[3] bodies hash   KEYS[4] tries hash
-- ARGV[1] now (ms)   ARGV[2] lease (ms)   ARGV[3] at most this many
-- ARGV[4] the prefix of the endpoint's pending keys (`webhook:{<endpoint_id>}:pending:`): a claimed queue's
-- key is the prefix and its id, in the endpoint's slot like every key here; '' to return no heads
-- ARGV[5] the configuration version the caller holds (absent: claim whatever the version)
-- Returns {claimed queue ids, earliest due score after the claim (no earlier than the end of a pause) or
-- false if nothing is queued, stored version, stored config if ARGV[5] is given and not the stored version
-- (then nothing is claimed) else false, failing_since or false, paused_until or false, the head of each
-- claimed queue as delivery_head.lua returns it without the configuration ({} if empty)}. The heads in the
-- claim's reply spare the delivery loop a round trip per round.

local stored = redis.call('HMGET', KEYS[2], 'version', 'config', 'failing_since', 'paused_until')
local version = stored[1] or '0'
local stale = ARGV[5] ~= nil and ARGV[5] ~= version
local now = tonumber(ARGV[1])
local paused = tonumber(stored[4] or '0')

local claimed = {}
if not stale and paused <= now and tonumber(ARGV[3]) > 0 then
  claimed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
  local until_ms = now + tonumber(ARGV[2])
  for _, member in ipairs(claimed) do
    redis.call('ZADD', KEYS[1], 'XX', until_ms, member)
  end
end

local earliest = false
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first > 0 then
  earliest = math.max(tonumber(first[2]), paused)
end
local config = false
if stale then
  config = stored[2]
end
local heads = {}
if ARGV[4] ~= '' then
  for i, member in ipairs(claimed) do
    local head = redis.call('ZRANGE', ARGV[4] .. member, 0, 0, 'WITHSCORES')
    if #head > 0 then
      heads[i] = {head[1], head[2], redis.call('HGET', KEYS[3], head[1]), redis.call('HGET', KEYS[4], head[1])}
    else
      heads[i] = {}
    end
  end
end
return {claimed, earliest, version, config, stored[3], stored[4], heads}
