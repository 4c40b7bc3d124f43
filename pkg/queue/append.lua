-- Append a message to a user agent's queue, unless its subscription changed or is
-- over its rate limit (checks.lua is prepended).
-- KEYS[1] the queue stream, KEYS[2] the topic hash, KEYS[3] the hash of recent
-- subscription changes, KEYS[4] (only when the subscription has a rate limit) the
-- limit's state (all with the same hash tag).
-- ARGV[1] key lifetime in ms (the message's TTL), ARGV[2] maximum queue length,
-- ARGV[3] topic field ("" for none), ARGV[4] the channel id, ARGV[5] the change
-- record the sender was checked against ('k' .. application server key),
-- ARGV[6] the limit's emission interval and ARGV[7] its burst window, in µs (0
-- without KEYS[4]), ARGV[8..] the entry's field/value pairs.
-- Returns the new entry id; false when the queue is full; 0 when the channel was
-- unregistered; 1 when it was registered again with another key; minus the µs
-- until the rate limit would allow a message when it refuses this one. A refused
-- message changes nothing: it is neither stored nor counted.
local refused = changed(KEYS[3], ARGV[4], ARGV[5])
if refused then
  return refused
end
local new_tat, now, wait
if KEYS[4] then
  new_tat, now, wait = limit_check(KEYS[4], tonumber(ARGV[6]), tonumber(ARGV[7]))
  if wait then
    return -wait
  end
end
local replaced = false
if ARGV[3] ~= '' then
  local old = redis.call('HGET', KEYS[2], ARGV[3])
  if old then
    replaced = redis.call('XDEL', KEYS[1], old) == 1
  end
end
if not replaced and redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[2]) then
  return false
end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 8))
if new_tat then
  limit_count(KEYS[4], new_tat, now)
end
local life = tonumber(ARGV[1])
-- The key lives as long as its longest-lived message; PTTL is -1 for a new key.
if redis.call('PTTL', KEYS[1]) < life then
  redis.call('PEXPIRE', KEYS[1], life)
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[3], id)
  if redis.call('PTTL', KEYS[2]) < life then
    redis.call('PEXPIRE', KEYS[2], life)
  end
end
return id
