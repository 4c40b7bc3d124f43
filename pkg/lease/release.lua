-- Release a lease if it is still held at the given epoch. The epoch field stays, so
-- that the next claim's epoch is larger. KEYS[1] the owner hash. ARGV[1] epoch.
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'gw', 'addr')
  return 1
end
return 0
