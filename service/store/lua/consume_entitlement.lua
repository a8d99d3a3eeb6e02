-- Take `units` from a credential's balance for one walk-in input, at most once per input.
--
-- KEYS[1] entitlement hash    KEYS[2] the input's consumption record (same hash tag)
-- ARGV[1] input id    ARGV[2] units    ARGV[3] how long records are kept (seconds)
-- Returns 'consumed' (now or by an earlier delivery of the same input), 'unknown' or 'exhausted'.
--
-- The record (a string: the units taken) expires after ARGV[3] seconds, which outlives both the idempotency
-- retention and every cancellation window. Hashes written before records had keys of their own hold them as
-- `c:<input id>` and `r:<input id>` fields: this script honours them for ARGV[3] seconds from the first time
-- it finds them (noted in the field `legacy_until`), then rewrites the hash to its balance alone.

local function legacy_fields_honoured(hash, keep_seconds)
  -- Whether the hash may still hold `c:` fields that count; past their time, rewrites it without them.
  if redis.call('HLEN', hash) <= 1 then
    return false  -- the balance alone (or no hash at all)
  end
  local now = tonumber(redis.call('TIME')[1])
  local until_seconds = redis.call('HGET', hash, 'legacy_until')
  if not until_seconds then
    redis.call('HSET', hash, 'legacy_until', now + keep_seconds)
    return true
  end
  if now < tonumber(until_seconds) then
    return true
  end
  -- Every legacy record is older than anything a walk-in or its refund can still need.
  local balance = redis.call('HGET', hash, 'balance')
  redis.call('UNLINK', hash)
  if balance then
    redis.call('HSET', hash, 'balance', balance)
  end
  return false
end

local keep_seconds = tonumber(ARGV[3])
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 'consumed'
end
if legacy_fields_honoured(KEYS[1], keep_seconds) and redis.call('HEXISTS', KEYS[1], 'c:' .. ARGV[1]) == 1 then
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
redis.call('SET', KEYS[2], units, 'EX', keep_seconds)
return 'consumed'
