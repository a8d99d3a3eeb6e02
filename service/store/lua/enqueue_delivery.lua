-- Queue one status event for one endpoint, once, behind the earlier events of the same order.
--
-- KEYS[1] pending zset of the order   KEYS[2] bodies hash   KEYS[3] due zset   KEYS[4] done hash
-- ARGV[1] event id   ARGV[2] sequence   ARGV[3] event JSON   ARGV[4] order id   ARGV[5] now (ms)
-- Returns 1 if queued (now or before), 0 if that sequence was settled already.

local done = tonumber(redis.call('HGET', KEYS[4], ARGV[4]) or '0')
if tonumber(ARGV[2]) <= done then
  return 0
end
if redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
-- NX: an order already waiting (backoff) or in flight (lease) keeps its time, so order and backoff hold.
redis.call('ZADD', KEYS[3], 'NX', ARGV[5], ARGV[4])
return 1
