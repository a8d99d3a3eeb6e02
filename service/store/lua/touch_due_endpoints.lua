-- Lower endpoints' entries in the due index to when something of theirs became due, after the atomic step
-- on the endpoint's keys that made it due (queuing, settling, replaying, enabling, the sweep). Each write
-- gets a new mark, so that a worker's raise computed before this write does not undo it.
--
-- KEYS[1] due index zset   KEYS[2] marks hash   KEYS[3] write counter
-- ARGV endpoint id, due (ms), endpoint id, due (ms), ...
-- Returns how many entries were written.

for i = 1, #ARGV, 2 do
  local mark = redis.call('INCR', KEYS[3])
  -- LT: an entry only moves earlier here (and a missing one is added).
  redis.call('ZADD', KEYS[1], 'LT', ARGV[i + 1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], mark)
end
return #ARGV / 2
