-- Shorten the life of a user agent's queue that nothing waits in, when its connection
-- ends, so that a user agent that left caught up holds almost nothing in Redis.
-- The emptied stream stays for ARGV[1] ms rather than going at once: it keeps its
-- last entry id meanwhile, so that ids only grow for a newer connection of the user
-- agent that is still reading it (a new stream's ids start again from the server's
-- clock). append.lua gives it back the life of the next message. The topics point at
-- no waiting message any more and go at once.
-- KEYS[1] the queue stream, KEYS[2] the topic hash (the same hash tag).
-- ARGV[1] how long an empty queue is kept, in ms.
-- Returns 1 when the queue was empty or absent, 0 when messages wait in it.
if redis.call('XLEN', KEYS[1]) > 0 then
  return 0
end
local keep = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
-- PTTL is -2 for no key, -1 for a key without expiry.
if left == -1 or left > keep then
  redis.call('PEXPIRE', KEYS[1], keep)
end
redis.call('DEL', KEYS[2])
return 1
