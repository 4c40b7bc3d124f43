-- Claim a user agent's connection for a gateway.
-- KEYS[1] the owner hash. ARGV[1] gateway id, ARGV[2] its gRPC address, ARGV[3] lease ms.
-- The new epoch is the server's clock in microseconds, or one more than the previous
-- epoch if that is later, so epochs only grow even after the key expired.
-- Returns {epoch, previous gateway id, previous address, previous epoch}.
local t = redis.call('TIME')
local epoch = tonumber(t[1]) * 1000000 + tonumber(t[2])
local prev = redis.call('HMGET', KEYS[1], 'epoch', 'gw', 'addr')
if prev[1] and tonumber(prev[1]) >= epoch then
  epoch = tonumber(prev[1]) + 1
end
local e = string.format('%d', epoch)
redis.call('HSET', KEYS[1], 'epoch', e, 'gw', ARGV[1], 'addr', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {e, prev[2] or '', prev[3] or '', prev[1] or ''}
