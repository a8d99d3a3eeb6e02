-- The event a claimed order is to attempt next: the earliest queued one, with its body and attempts so far.
--
-- KEYS[1] pending zset of the order   KEYS[2] bodies hash   KEYS[3] tries hash
-- Returns {event id, sequence, body or false, tries JSON or false}, or an empty list if nothing is queued.

local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then
  return {}
end
return {first[1], first[2], redis.call('HGET', KEYS[2], first[1]), redis.call('HGET', KEYS[3], first[1])}
