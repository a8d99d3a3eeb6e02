-- Record what became of one command, under the rule its recorder follows.
--
-- KEYS[1] the command_id's claim (string: the holder's fingerprint)   KEYS[2] the outcome (string: JSON)
-- (one hash tag, `{<client_id>/<command_id>}`)
-- ARGV[1] rule: 'first' | 'holder' | 'unanswered'   ARGV[2] the command's fingerprint ('holder' only)
-- ARGV[3] the outcome JSON   ARGV[4] how long to keep it (ms) when no claim says
--
-- 'first'      the API's `accepted`: only if no outcome is recorded yet (the service may have been quicker).
-- 'holder'     the service's `applied` or `rejected`: only for the command whose payload holds the claim,
--              so a command rejected for reusing a command_id never replaces the holder's outcome; and
--              only while the claim lasts (an outbox carried out after the claim expired records nothing).
-- 'unanswered' a rejection decided before any claim (INVALID_COMMAND): only if no outcome is recorded
--              yet, or only `accepted`.
--
-- The outcome expires with the claim when there is one, else after ARGV[4] ms: it is kept exactly as long
-- as the command_id is claimed.
-- Returns 1 if recorded, 0 if not.

local rule = ARGV[1]
local claim = redis.call('GET', KEYS[1])
if rule == 'holder' then
  if claim ~= ARGV[2] then
    return 0
  end
else
  local current = redis.call('GET', KEYS[2])
  if current and (rule == 'first' or cjson.decode(current)['outcome'] ~= 'accepted') then
    return 0
  end
end

local keep = redis.call('PTTL', KEYS[1])
if keep <= 0 then
  keep = tonumber(ARGV[4])
end
redis.call('SET', KEYS[2], ARGV[3], 'PX', keep)
return 1
