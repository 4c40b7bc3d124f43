-- Renew a lease if it is still held at the given epoch, or hold it again at that
-- epoch if its record expired and nobody claimed the user agent since: Redis was
-- unreachable for longer than a lease lives while the connection stayed. The epoch
-- is kept, so the connection's deliveries still match; a later claim elsewhere gets a
-- larger one, as after a renewal.
-- KEYS[1] the owner hash. ARGV[1] epoch, ARGV[2] lease ms, ARGV[3] the gateway's id,
-- ARGV[4] its gRPC address.
-- Returns 1 if renewed, 2 if held again after it expired, 0 if lost (taken over or
-- released).
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'gw', ARGV[3], 'addr', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 2
end
if epoch == ARGV[1] and redis.call('HEXISTS', KEYS[1], 'gw') == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
