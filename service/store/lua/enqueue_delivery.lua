-- Queue one event for one endpoint, once: a status event behind the earlier events of its order, a
-- command rejection in a queue of its own.
--
-- KEYS[1] pending zset of the queue   KEYS[2] bodies hash   KEYS[3] due zset   KEYS[4] done hash
-- KEYS[5] settled rejections zset
-- ARGV[1] event id   ARGV[2] sequence   ARGV[3] event JSON   ARGV[4] queue id   ARGV[5] now (ms)
-- ARGV[6] 'order' (the queue is an order's: its id is the order id) | 'single' (a rejection's own queue)
-- Returns 1 if queued (now or before), 0 if that event was settled already.
--
-- An order's queue is settled up to the last sequence in `done`; a single event, which has no sequence,
-- is settled once its queue id is in the settled zset.

if ARGV[6] == 'single' then
  if redis.call('ZSCORE', KEYS[5], ARGV[4]) then
    return 0
  end
else
  local done = tonumber(redis.call('HGET', KEYS[4], ARGV[4]) or '0')
  if tonumber(ARGV[2]) <= done then
    return 0
  end
end
if redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
-- NX: a queue already waiting (backoff) or in flight (lease) keeps its time, so order and backoff hold.
redis.call('ZADD', KEYS[3], 'NX', ARGV[5], ARGV[4])
return 1
