-- Apply one decided input to one order, atomically: the idempotency check, the optimistic version check,
-- the new state, the input record and the outbox entries happen together or not at all.
--
-- KEYS[1] order hash, KEYS[2] inputs hash, KEYS[3] outbox hash, KEYS[4] history list (one hash tag)
-- ARGV[1] input id            ARGV[2] fingerprint of the input's payload
-- ARGV[3] expected version    ARGV[4] new state JSON, or '' to leave the state as it is
-- ARGV[5] new version         ARGV[6] epoch ms at which the order's keys expire, 0 for never, '' to leave
-- ARGV[7..] outbox entries, in publication order
--
-- A version is the id of the input that last changed the state ('' before the order exists), not a
-- counter: two transitions decided one after the other in a batch chain their versions, and a change made
-- meanwhile by anyone else can never produce the version the second one expects.
--
-- Returns {'duplicate', fingerprint} when the input was applied before,
--         {'conflict', current version} when the order changed since it was read,
--         {'ok', the number of each outbox entry stored, in order} otherwise. Entry numbers are formatted
--         here only: zero-padded, so that they sort in publication order.

local seen = redis.call('HGET', KEYS[2], ARGV[1])
if seen then
  return {'duplicate', seen}
end

local version = redis.call('HGET', KEYS[1], 'version') or ''
if version ~= ARGV[3] then
  return {'conflict', version}
end

if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'state', ARGV[4], 'version', ARGV[5])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])

local entries = #ARGV - 6
local numbers = {}
if entries > 0 then
  local first = redis.call('HINCRBY', KEYS[1], 'outbox_seq', entries) - entries + 1
  -- One HSET and at most one RPUSH for all the entries: each redis.call costs more than its work here.
  local fields, events = {}, {}
  for i = 1, entries do
    numbers[i] = string.format('%012d', first + i - 1)
    fields[2 * i - 1], fields[2 * i] = numbers[i], ARGV[6 + i]
    -- A status event (`status\n<key>\n<event>`) is also kept in the order's history. Each is decided
    -- once, in sequence (an input applied before returned above), so the list index is sequence - 1.
    if string.sub(ARGV[6 + i], 1, 7) == 'status\n' then
      local key_end = string.find(ARGV[6 + i], '\n', 8, true)
      events[#events + 1] = string.sub(ARGV[6 + i], key_end + 1)
    end
  end
  redis.call('HSET', KEYS[3], unpack(fields))
  if #events > 0 then
    redis.call('RPUSH', KEYS[4], unpack(events))
  end
end

-- The retention policy: the decision says how long the order is kept. The outbox empties itself (a hash
-- without fields is deleted), but entries stored here must outlive their publication, hence it too.
if ARGV[6] ~= '' then
  if ARGV[6] == '0' then
    redis.call('PERSIST', KEYS[1])
    redis.call('PERSIST', KEYS[2])
    redis.call('PERSIST', KEYS[4])
  else
    redis.call('PEXPIREAT', KEYS[1], ARGV[6])
    redis.call('PEXPIREAT', KEYS[2], ARGV[6])
    redis.call('PEXPIREAT', KEYS[4], ARGV[6])
    if entries > 0 then
      redis.call('PEXPIREAT', KEYS[3], ARGV[6])
    end
  end
end
-- Expiry left as it is: a history begun now (an order stored before histories were kept) takes the order's.
if ARGV[6] == '' and redis.call('PTTL', KEYS[4]) == -1 then
  local order_ttl = redis.call('PTTL', KEYS[1])
  if order_ttl > 0 then
    redis.call('PEXPIRE', KEYS[4], order_ttl)
  end
end
return {'ok', unpack(numbers)}
