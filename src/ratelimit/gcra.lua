-- GCRA (generic cell rate algorithm) on Redis's own clock, so every instance shares one quota
-- and no instance's clock matters.
--   KEYS[1]  the limited key; it holds the theoretical arrival time (TAT) in microseconds
--   ARGV[1]  the emission interval in microseconds (window / limit)
--   ARGV[2]  the burst: requests that may arrive at once
-- Returns {allowed (1 or 0), remaining burst, retry after (us), reset (us)}.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2]) * interval
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then
  tat = now
end
local new_tat = tat + interval
if new_tat - now > capacity then
  return {0, 0, new_tat - capacity - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((capacity - (new_tat - now)) / interval), 0, new_tat - now}
