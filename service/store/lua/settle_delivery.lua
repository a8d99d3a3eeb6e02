-- Record the outcome of one delivery attempt, if this worker still holds the queue's lease.
--
-- KEYS[1] pending zset of the queue   KEYS[2] bodies   KEYS[3] due   KEYS[4] done   KEYS[5] tries
-- KEYS[6] dead   KEYS[7] endpoint hash   KEYS[8] attempt log stream   KEYS[9] settled rejections zset
-- KEYS[10] done_at zset (when each order in `done` was last settled)
-- ARGV[1] queue id   ARGV[2] event id   ARGV[3] sequence   ARGV[4] 'delivered' | 'retry' | 'dead' | 'hold'
-- ARGV[5] lease score the worker claimed with   ARGV[6] next attempt (ms, for retry and hold)
-- ARGV[7] attempts so far, JSON (this one included; '' unless retry: only a retry keeps them)
-- ARGV[8] dead record JSON ('' unless dead)
-- ARGV[9] now (ms)   ARGV[10] failures that pause the endpoint   ARGV[11] pause (ms)
-- ARGV[12] attempt log length   ARGV[13] 'order' | 'single' (see enqueue_delivery.lua)
-- ARGV[14] how long a settled single event is remembered (ms)
-- ARGV[15] how long an order's last settled sequence is remembered (ms)
-- ARGV[16] lease (ms) under which a 'delivered' settle keeps the slot busy ('': it does not): the queue
-- stays leased to the worker if it has more, else another due queue of the endpoint is leased to it
-- ARGV[17] the configuration version the worker holds (with ARGV[16])
-- ARGV[18] the prefix of the endpoint's pending keys (with ARGV[16]; see claim_deliveries.lua)
-- ARGV[19..] attempt log fields (name, value, ...; none for 'hold')
-- Returns 'lost' if the lease was lost (another worker owns the queue now), else {the endpoint's
-- consecutive failures after this attempt, failing_since or false, the endpoint's earliest due score after
-- this (for the due index's touch) or false if nothing is queued or nothing became due}; when a queue is
-- kept for the worker (ARGV[16]), three more: its lease score, its next event as delivery_head.lua returns
-- it, and its id. That spares the worker a claim and a head per delivery, and the wait for its next round,
-- and the index's touch (a lease only makes a queue later: nothing became due).

local lease = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not lease or tonumber(lease) ~= tonumber(ARGV[5]) then
  return 'lost'
end

if #ARGV > 18 then
  local fields = {}
  for i = 19, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[12], '*', unpack(fields))
end

local outcome = ARGV[4]
local failures = tonumber(redis.call('HGET', KEYS[7], 'failures') or '0')
if outcome == 'delivered' then
  failures = 0
  redis.call('HSET', KEYS[7], 'failures', 0)
  redis.call('HDEL', KEYS[7], 'failing_since', 'paused_until')
elseif outcome ~= 'hold' then
  failures = redis.call('HINCRBY', KEYS[7], 'failures', 1)
  redis.call('HSETNX', KEYS[7], 'failing_since', ARGV[9])
  if failures >= tonumber(ARGV[10]) then
    redis.call('HSET', KEYS[7], 'paused_until', tonumber(ARGV[9]) + tonumber(ARGV[11]))
  end
end

-- What the worker needs next: the breaker, and when the endpoint is due next (for the due index).
local function result()
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  local earliest = false
  if #first > 0 then
    earliest = first[2]
  end
  return {failures, redis.call('HGET', KEYS[7], 'failing_since'), earliest}
end

if outcome == 'retry' or outcome == 'hold' then
  if outcome == 'retry' then
    redis.call('HSET', KEYS[5], ARGV[2], ARGV[7])
  end
  redis.call('ZADD', KEYS[3], 'XX', ARGV[6], ARGV[1])
  return result()
end

-- Delivered or given up: the event leaves the queue, and the queue's next event becomes due at once.
if outcome == 'dead' then
  redis.call('HSET', KEYS[6], ARGV[2], ARGV[8])
end
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[5], ARGV[2])
if ARGV[13] == 'single' then
  -- Remembered for as long as a re-read of the topic could queue it again, and no longer: this bounds the
  -- settled zset by the rejections of that period (`done` is bounded below, by the order retention).
  redis.call('ZADD', KEYS[9], ARGV[9], ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', tonumber(ARGV[9]) - tonumber(ARGV[14]))
else
  local done = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
  if tonumber(ARGV[3]) > done then
    redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
  end
  -- `done` bounded in time (Redis 6.2 cannot expire hash fields): the orders settled longest ago leave it,
  -- a few per settle, which keeps up with the orders that enter it (one per settle at most).
  redis.call('ZADD', KEYS[10], ARGV[9], ARGV[1])
  local forgotten = redis.call(
    'ZRANGEBYSCORE', KEYS[10], '-inf', tonumber(ARGV[9]) - tonumber(ARGV[15]), 'LIMIT', 0, 10
  )
  if #forgotten > 0 then
    redis.call('HDEL', KEYS[4], unpack(forgotten))
    redis.call('ZREM', KEYS[10], unpack(forgotten))
  end
end
-- `due` indexes the endpoint's queues (deleting the endpoint relies on it): a queue leaves it with its
-- last queued event, never before.
local following = outcome == 'delivered' and ARGV[16] ~= ''

-- Lease `queue` (its pending zset `pending`, not empty) to the worker, with its next event.
local function keep(queue, pending)
  local lease_until = tonumber(ARGV[9]) + tonumber(ARGV[16])
  redis.call('ZADD', KEYS[3], 'XX', lease_until, queue)
  local kept = result()
  kept[3] = false
  local first = redis.call('ZRANGE', pending, 0, 0, 'WITHSCORES')
  local stored = redis.call('HMGET', KEYS[7], 'version', 'config')
  local version = stored[1] or '0'
  local config = false
  if ARGV[17] ~= version then
    config = stored[2]
  end
  kept[4] = lease_until
  kept[5] = {
    first[1], first[2], redis.call('HGET', KEYS[2], first[1]), redis.call('HGET', KEYS[5], first[1]),
    version, config,
  }
  kept[6] = queue
  return kept
end

if redis.call('ZCARD', KEYS[1]) > 0 then
  if following then
    return keep(ARGV[1], KEYS[1])
  end
  redis.call('ZADD', KEYS[3], 'XX', ARGV[9], ARGV[1])
  return result()
end
redis.call('ZREM', KEYS[3], ARGV[1])
if following then
  -- A delivery reset the breaker, so nothing holds the endpoint back: its earliest due queue, if one is.
  local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[9], 'LIMIT', 0, 1)
  if #due > 0 and redis.call('ZCARD', ARGV[18] .. due[1]) > 0 then
    return keep(due[1], ARGV[18] .. due[1])
  end
end
-- Nothing became due (the queue is gone; the index entry already covers the endpoint's other queues, each
-- of whose writes touched it): no touch, so no earliest. A round trip less per delivery of an order's last
-- queued event.
local settled = result()
settled[3] = false
return settled
