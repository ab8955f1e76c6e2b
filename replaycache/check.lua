-- One replay check for one sender, run atomically by Redis. Every key has
-- the sender's hash tag, so the script runs on one Redis Cluster node.
--
-- KEYS[1] marker hash: t0 = recovery moment (Unix ms), w = write counter
-- KEYS[2] nonce key
-- KEYS[3] sequence high mark of the channel
-- KEYS[4] sequence bitmap of the channel: bit (n mod window) set when
--         sequence n in (high-window, high] was seen
-- ARGV[1] now (Unix ms)         ARGV[2] message timestamp (Unix ms)
-- ARGV[3] guard (ms)            ARGV[4] nonce TTL (ms)
-- ARGV[5] T0 to reset, or ''    ARGV[6] '1' when the message has a sequence
-- ARGV[7] sequence              ARGV[8] sequence window
-- ARGV[9] max sequence jump     ARGV[10] sequence state TTL (ms)
--
-- Returns {status, t0, w}; status is ok, lost, nonce, seq_dup, seq_old or
-- seq_jump. A denied check writes nothing but the marker.

local now = tonumber(ARGV[1])
local t0 = tonumber(redis.call('HGET', KEYS[1], 't0'))
if not t0 then
  -- First use, or Redis lost its data: every nonce seen before is gone.
  t0 = now
  redis.call('HSET', KEYS[1], 't0', ARGV[1])
elseif ARGV[5] ~= '' and tonumber(ARGV[5]) == t0 then
  -- A client saw a newer counter than this one: Redis rolled back.
  t0 = math.max(now, t0 + 1)
  redis.call('HSET', KEYS[1], 't0', string.format('%.0f', t0))
end
local w = redis.call('HINCRBY', KEYS[1], 'w', 1)

if tonumber(ARGV[2]) < t0 + tonumber(ARGV[3]) then
  return {'lost', t0, w}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'nonce', t0, w}
end

if ARGV[6] == '1' then
  local seq = tonumber(ARGV[7])
  local win = tonumber(ARGV[8])
  local high = tonumber(redis.call('GET', KEYS[3]))
  if not high then
    redis.call('DEL', KEYS[4])
    redis.call('SET', KEYS[3], ARGV[7])
  elseif seq > high then
    if seq - high > tonumber(ARGV[9]) then
      return {'seq_jump', t0, w}
    end
    if seq - high >= win then
      redis.call('DEL', KEYS[4])
    else
      for n = high + 1, seq - 1 do
        redis.call('SETBIT', KEYS[4], n % win, 0)
      end
    end
    redis.call('SET', KEYS[3], ARGV[7])
  else
    if high - seq >= win then
      return {'seq_old', t0, w}
    end
    if redis.call('GETBIT', KEYS[4], seq % win) == 1 then
      return {'seq_dup', t0, w}
    end
  end
  redis.call('SETBIT', KEYS[4], seq % win, 1)
  redis.call('PEXPIRE', KEYS[3], ARGV[10])
  redis.call('PEXPIRE', KEYS[4], ARGV[10])
end

redis.call('SET', KEYS[2], '1', 'PX', ARGV[4], 'NX')
return {'ok', t0, w}
