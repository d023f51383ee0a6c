-- One user's open event streams: a sorted set of stream ids scored by when each lapses unless
-- renewed (ms since the epoch). Prunes lapsed streams, then adds this one if the user holds
-- fewer than the limit.
-- KEYS[1] the user's set; ARGV: now_ms, lapse_ms, stream id, limit, key TTL ms.
-- Returns 1 if added, 0 if the user already holds the limit.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
