-- Claim due members (timers, webhook deliveries) for one instance: each claimed member's score moves to
-- now + lease, so no other instance sees it due until the lease runs out (a crashed claimer's members
-- come back then).
--
-- KEYS[1] sorted set scored by due time (ms)    ARGV[1] now (ms)    ARGV[2] lease (ms)    ARGV[3] at most this many
-- Returns the claimed members.

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', until_ms, member)
end
return due
