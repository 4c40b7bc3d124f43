-- Give back one event that gcra.lua counted, for a message a later check refused.
-- KEYS[1] the limit's state; ARGV[1] the emission interval in µs.
-- The theoretical arrival time moves back one interval, never before now: a key
-- whose TAT would pass is deleted, as it would equal a fresh one.
local stored = redis.call('GET', KEYS[1])
if not stored then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(stored) - tonumber(ARGV[1])
if tat <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
return 0
