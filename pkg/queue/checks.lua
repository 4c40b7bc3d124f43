-- The checks a message passes before append.lua stores it or admit.lua lets it
-- through unstored, prepended to both scripts so that they are written once.

-- changed returns 0 when the channel was unregistered lately, 1 when it was
-- registered again with another key than the change record rec the sender was
-- checked against, else nil. changes is the hash of recent subscription changes.
local function changed(changes, channel, rec)
  local change = redis.call('HGET', changes, channel)
  if change then
    if change == 'x' then
      return 0
    end
    if change ~= rec then
      return 1
    end
  end
  return nil
end

-- A subscription's rate limit, by the generic cell rate algorithm (GCRA): the key
-- holds the theoretical arrival time (TAT) of the next message, in microseconds of
-- the Redis server's clock, so that every router shares one clock and one count.
-- interval is the emission interval in µs (period / count), window the burst window
-- in µs (the period: up to count messages may arrive at once).
--
-- limit_check counts nothing: it returns the new TAT and now when a message is
-- allowed, else nil, nil and the µs until one would be. limit_count then counts
-- the message, once nothing else can refuse it, so that a refused message counts
-- nothing.
local function limit_check(key, interval, window)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local stored = redis.call('GET', key)
  local tat = now
  if stored then
    tat = math.max(tonumber(stored), now)
  end
  local new_tat = tat + interval
  if new_tat - now > window then
    return nil, nil, new_tat - window - now
  end
  return new_tat, now
end

-- The state is worth keeping only until the TAT passes: then it equals a fresh key.
local function limit_count(key, new_tat, now)
  redis.call('SET', key, string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
end

