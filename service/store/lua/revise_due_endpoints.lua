-- Move endpoints' entries in the due index to what a claim found (later, usually), or remove them, but only
-- where no write has lowered the entry since the worker read it (its mark is unchanged): a write after the
-- claim's atomic step may have made something due that the claim did not see.
--
-- KEYS[1] due index zset   KEYS[2] marks hash
-- ARGV endpoint id, mark read, when due next (ms) or '' (nothing to claim: no queue, disabled, deleted), ...
-- Returns how many entries were revised.

local revised = 0
for i = 1, #ARGV, 3 do
  local mark = redis.call('HGET', KEYS[2], ARGV[i])
  if mark and mark == ARGV[i + 1] then
    if ARGV[i + 2] == '' then
      redis.call('ZREM', KEYS[1], ARGV[i])
      redis.call('HDEL', KEYS[2], ARGV[i])
    else
      redis.call('ZADD', KEYS[1], ARGV[i + 2], ARGV[i])
    end
    revised = revised + 1
  end
end
return revised
