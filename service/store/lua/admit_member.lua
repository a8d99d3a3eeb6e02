-- Add a member to a capped set: the per-client bound on endpoints and API keys, checked and applied at once.
--
-- KEYS[1] the set    ARGV[1] member    ARGV[2] the most members the set may hold
-- Returns 1 when the member is in the set (now, or already), 0 when the set is full.

if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return 1
end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
