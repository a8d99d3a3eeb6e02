-- Give back what one walk-in input consumed, at most once however often the refund is replayed.
--
-- KEYS[1] entitlement hash    ARGV[1] input id of the consumption
-- Returns the units refunded now (0 when nothing was consumed or it was refunded before).

local units = redis.call('HGET', KEYS[1], 'c:' .. ARGV[1])
if not units or redis.call('HSETNX', KEYS[1], 'r:' .. ARGV[1], 1) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'balance', units)
return tonumber(units)
