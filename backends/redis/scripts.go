package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts. Lua numbers are doubles: microsecond timestamps (about
// 1.8e15) and fences stay exact below 2^53 (9.0e15), and are formatted with
// %.0f, never tostring, which would switch to exponent form.

// claimScript takes an election if it is vacant and the server is out of
// its quarantine.
//
//	KEYS[1] leader key, KEYS[2] meta hash
//	ARGV[1] record JSON without fence, ARGV[2] announcement JSON without
//	fence, ARGV[3] TTL in ms, ARGV[4] quarantine in µs, ARGV[5] channel
//
// Returns {"ok", fence} | {"taken", value, pttl} | {"quarantine", µs left}.
//
// The quarantine runs from the server's start, estimated as TIME minus
// INFO's uptime_in_seconds plus one second. Redis computes uptime as whole
// seconds now minus whole seconds at start, which overstates the real
// uptime by up to a second (it reports 1 a few ms after a start at x.9s);
// the added second makes the estimate never earlier than the real start, so
// the quarantine is never shorter than asked (and up to two seconds longer).
var claimScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local quarantine = tonumber(ARGV[4])
if quarantine > 0 then
  local uptime = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)'))
  if uptime == nil then
    return redis.error_reply('ERR election: INFO server reports no uptime_in_seconds')
  end
  local started = now - (uptime - 1) * 1000000
  if now < started + quarantine then
    return {'quarantine', string.format('%.0f', started + quarantine - now)}
  end
end
local last = tonumber(redis.call('HGET', KEYS[2], 'fence')) or 0
local fence = string.format('%.0f', math.max(last + 1, now))
local value = '{"fence":' .. fence .. ',' .. string.sub(ARGV[1], 2)
if not redis.call('SET', KEYS[1], value, 'NX', 'PX', ARGV[3]) then
  return {'taken', redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
end
redis.call('HSET', KEYS[2], 'fence', fence)
redis.call('PUBLISH', ARGV[5], '{"fence":' .. fence .. ',' .. string.sub(ARGV[2], 2))
return {'ok', fence}
`)

// ownsLua is the owner check of renew and release: the record starts with
// {"fence":N, and the owner token comes right after that first comma, so
// comparing the bytes there to the JSON-encoded `"token":"…",` (tokenNeedle)
// is exact, cheaper than decoding JSON, and cannot be fooled by metadata
// that contains the same text further on.
const ownsLua = `
local function owns(value, needle)
  local comma = string.find(value, ',', 1, true)
  return comma ~= nil and string.sub(value, comma + 1, comma + #needle) == needle
end
`

// renewScript extends every listed claim whose stored owner token matches.
//
//	KEYS[i] leader key of claim i
//	ARGV[1] TTL in ms, ARGV[i+1] tokenNeedle of claim i
//
// Returns the 1-based indexes of the claims that were not renewed.
var renewScript = goredis.NewScript(ownsLua + `
local failed = {}
for i = 1, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if value and owns(value, ARGV[i + 1]) then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  else
    failed[#failed + 1] = i
  end
end
return failed
`)

// releaseScript deletes a claim whose stored owner token matches and
// announces the vacancy.
//
//	KEYS[1] leader key; ARGV[1] tokenNeedle, ARGV[2] channel
//
// Returns 1 when released, 0 when the token did not match or the election
// was vacant.
var releaseScript = goredis.NewScript(ownsLua + `
local value = redis.call('GET', KEYS[1])
if not value or not owns(value, ARGV[1]) then return 0 end
local fence = string.match(value, '^{"fence":(%d+),') or '0'
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], '{"fence":' .. fence .. ',"kind":"release"}')
return 1
`)

// readScript reads an election atomically: {value|nil, pttl, last fence|nil}.
//
//	KEYS[1] leader key, KEYS[2] meta hash
var readScript = goredis.NewScript(`
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('HGET', KEYS[2], 'fence')}
`)
