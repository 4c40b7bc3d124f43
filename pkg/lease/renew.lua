-- Renew a lease if it is still held at the given epoch.
-- KEYS[1] the owner hash. ARGV[1] epoch, ARGV[2] lease ms. Returns 1 if renewed, 0 if lost.
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[1] and redis.call('HEXISTS', KEYS[1], 'gw') == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
