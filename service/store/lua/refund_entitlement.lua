-- Give back what one walk-in input consumed, at most once however often the refund is replayed.
--
-- KEYS[1] entitlement hash    KEYS[2] the input's consumption record (same hash tag)
-- ARGV[1] input id of the consumption
-- Returns the units refunded now (0 when nothing was consumed, it was refunded before, or its record
-- expired, long after the last moment the walk-in could be cancelled).
--
-- The record becomes 'refunded' and keeps its expiry. A consumption recorded the old way, as a
-- `c:<input id>` hash field (see consume_entitlement.lua), is refunded once through an `r:<input id>` field.

local record = redis.call('GET', KEYS[2])
if record then
  if record == 'refunded' then
    return 0
  end
  redis.call('SET', KEYS[2], 'refunded', 'KEEPTTL')
  redis.call('HINCRBY', KEYS[1], 'balance', record)
  return tonumber(record)
end
local units = redis.call('HGET', KEYS[1], 'c:' .. ARGV[1])
if not units or redis.call('HSETNX', KEYS[1], 'r:' .. ARGV[1], 1) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'balance', units)
return tonumber(units)
