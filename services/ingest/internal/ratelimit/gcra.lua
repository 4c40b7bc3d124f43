-- Count one event against a rate limit with the generic cell rate algorithm (GCRA):
-- the key holds the theoretical arrival time (TAT) of the next event, in
-- microseconds of the Redis server's clock, so that every ingest replica shares
-- one clock and one count.
-- KEYS[1] the limit's state.
-- ARGV[1] emission interval in µs (period / count), ARGV[2] burst window in µs
-- (the period: up to count events may arrive at once).
-- Returns 0 when the event is allowed (and counted), else the µs until one would be.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then
  tat = math.max(tonumber(stored), now)
end
local new_tat = tat + interval
if new_tat - now > window then
  return new_tat - window - now
end
-- The state is worth keeping only until the TAT passes: then it equals a fresh key.
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return 0
