-- Take `units` from a credential's balance for one walk-in input, at most once per input.
--
-- KEYS[1] entitlement hash    ARGV[1] input id    ARGV[2] units
-- Returns 'consumed' (now or by an earlier delivery of the same input), 'unknown' or 'exhausted'.

if redis.call('HEXISTS', KEYS[1], 'c:' .. ARGV[1]) == 1 then
  return 'consumed'
end
local balance = redis.call('HGET', KEYS[1], 'balance')
if not balance then
  return 'unknown'
end
local units = tonumber(ARGV[2])
if tonumber(balance) < units then
  return 'exhausted'
end
redis.call('HINCRBY', KEYS[1], 'balance', -units)
redis.call('HSET', KEYS[1], 'c:' .. ARGV[1], units)
return 'consumed'
