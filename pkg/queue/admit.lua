-- Admit a message that is not stored (TTL 0) unless its subscription changed or is
-- over its rate limit, and count it against the limit (checks.lua is prepended):
-- what append.lua checks and counts, without storing.
-- KEYS[1] the hash of recent subscription changes, KEYS[2] the subscription's
-- rate-limit state (the same hash tag).
-- ARGV[1] the channel id, ARGV[2] the change record the sender was checked
-- against, ARGV[3] the limit's emission interval and ARGV[4] its burst window, in µs.
-- Returns 'OK' when admitted (and counted), else as append.lua: 0 unregistered, 1
-- registered again with another key, minus the µs until the limit would allow a
-- message; a refused message counts nothing.
local refused = changed(KEYS[1], ARGV[1], ARGV[2])
if refused then
  return refused
end
local new_tat, now, wait = limit_check(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
if wait then
  return -wait
end
limit_count(KEYS[2], new_tat, now)
return redis.status_reply('OK')
