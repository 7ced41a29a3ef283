package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts. Lua numbers are doubles: microsecond timestamps (about
// 1.8e15) and fences stay exact below 2^53 (9.0e15), and are formatted with
// %.0f, never tostring, which would switch to exponent form.
//
// Every key a script touches carries the prefix's hash tag (keys.go); the
// holder's session key is derived from the claim value, not declared, which
// a script without a "#!lua" line may do, and which a Cluster accepts
// because the key is in the slot of the declared ones.

// recordLua reads stored values. lastFence reads an entry of the fences
// hash, {"v":V,"fence":F}: nil for none, or for one it cannot read.
// holder returns the holder's session ID and the position of the comma
// that ends the record's head
// {"v":V,"fence":F,"session":"S", or nil for a value that is not a
// claim record (another program wrote it). owns compares the bytes after
// the head with the JSON-encoded `"token":"…",` (tokenNeedle): exact,
// cheaper than decoding JSON, and not fooled by metadata that contains the
// same text further on. Any format version v matches: a later format keeps
// this head (docs/record-format.md).
const recordLua = `
local function holder(value)
  local _, e, sid = string.find(value, '^{"v":%d+,"fence":%d+,"session":"([%w_%-]+)",')
  return sid, e
end
local function fenceOf(value)
  return string.match(value, '^{"v":%d+,"fence":(%d+),')
end
local function lastFence(entry)
  if not entry then return nil end
  return string.match(entry, '^{"v":%d+,"fence":(%d+)')
end
local function owns(value, needle)
  local sid, e = holder(value)
  return sid ~= nil and string.sub(value, e + 1, e + #needle) == needle
end
`

// claimScript takes an election if it is vacant (no claim, or a claim whose
// session key is gone) and the server is out of its quarantine.
//
//	KEYS[1] claim key, KEYS[2] fences hash, KEYS[3] the claimer's session key
//	ARGV[1] claim record JSON without version and fence (claimTail)
//	ARGV[2] announcement JSON without version and fence
//	ARGV[3] quarantine in µs, ARGV[4] channel, ARGV[5] session key prefix,
//	ARGV[6] election name (field of the fences hash), ARGV[7] tokenNeedle,
//	ARGV[8] versionPrefix, ARGV[9] the claimer's fence floor (fence.go)
//
// Returns {"ok", fence} | {"taken", value, holder's session PTTL} |
// {"quarantine", µs left} | {"foreign"} (the key holds no claim record) |
// {"nosession"} (the claimer's session key is gone).
//
// A claim already stored with the claimer's token and session is a replay
// (go-redis retried a write that had succeeded): it returns "ok" with the
// stored fence, so that the claimer does not take its own claim, which its
// session would keep alive, for someone else's.
//
// The quarantine runs from the server's start, estimated as TIME minus
// INFO's uptime_in_seconds plus one second. Redis computes uptime as whole
// seconds now minus whole seconds at start, which overstates the real
// uptime by up to a second (it reports 1 a few ms after a start at x.9s);
// the added second makes the estimate never earlier than the real start, so
// the quarantine is never shorter than asked (and up to two seconds longer).
var claimScript = goredis.NewScript(recordLua + `
if redis.call('EXISTS', KEYS[3]) == 0 then
  return {'nosession'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local quarantine = tonumber(ARGV[3])
if quarantine > 0 then
  local uptime = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%-?%d+)'))
  if uptime == nil then
    return redis.error_reply('ERR election: INFO server reports no uptime_in_seconds')
  end
  local started = now - (uptime - 1) * 1000000
  if now < started + quarantine then
    return {'quarantine', string.format('%.0f', started + quarantine - now)}
  end
end
local last = tonumber(lastFence(redis.call('HGET', KEYS[2], ARGV[6]))) or 0
local current = redis.call('GET', KEYS[1])
if current then
  local sid, e = holder(current)
  if not sid then
    return {'foreign'}
  end
  if ARGV[5] .. sid == KEYS[3] and string.sub(current, e + 1, e + #ARGV[7]) == ARGV[7] then
    return {'ok', fenceOf(current)}
  end
  local left = redis.call('PTTL', ARGV[5] .. sid)
  if left ~= -2 then
    return {'taken', current, left}
  end
  last = math.max(last, tonumber(fenceOf(current)) or 0)
end
local fence = string.format('%.0f', math.max(last + 1, now, (tonumber(ARGV[9]) or 0) + 1))
redis.call('SET', KEYS[1], ARGV[8] .. fence .. ',' .. string.sub(ARGV[1], 2))
redis.call('HSET', KEYS[2], ARGV[6], ARGV[8] .. fence .. '}')
redis.call('PUBLISH', ARGV[4], ARGV[8] .. fence .. ',' .. string.sub(ARGV[2], 2))
return {'ok', fence}
`)

// releaseScript deletes a claim whose stored owner token matches and
// announces the vacancy. When the releaser is not the claim's session (a
// release by token from elsewhere), the claim is added to the holder
// session's lost set, which that session's next renewal reports.
//
//	KEYS[1] claim key, KEYS[2] fences hash
//	ARGV[1] tokenNeedle, ARGV[2] channel, ARGV[3] name as a JSON string,
//	ARGV[4] versionPrefix, ARGV[5] name (field of the fences hash),
//	ARGV[6] the releaser's session ID, ARGV[7] session key prefix,
//	ARGV[8] lost set prefix
//
// Returns 1 when released, 0 when the token did not match or the election
// was vacant: no claim, or a claim whose session key is gone (ended or
// expired), which the claim and read scripts also take for vacant, so
// that a release never reports as held a claim a reader has seen gone. A
// vacant election (its claim deleted or evicted, which Redis does not
// announce) is announced again at its last fence, so that waiters that
// still believe it held learn otherwise.
var releaseScript = goredis.NewScript(recordLua + `
local value = redis.call('GET', KEYS[1])
local fence
if value then
  if not owns(value, ARGV[1]) then
    return 0
  end
  if redis.call('EXISTS', ARGV[7] .. holder(value)) == 0 then
    value = nil
  end
end
if value then
  fence = fenceOf(value)
  redis.call('DEL', KEYS[1])
  local sid = holder(value)
  if sid ~= ARGV[6] then
    local left = redis.call('PTTL', ARGV[7] .. sid)
    if left > 0 then
      redis.call('SADD', ARGV[8] .. sid, fence .. ':' .. ARGV[5])
      redis.call('PEXPIRE', ARGV[8] .. sid, left)
    end
  end
else
  fence = lastFence(redis.call('HGET', KEYS[2], ARGV[5]))
end
if fence then
  redis.call('PUBLISH', ARGV[2], ARGV[4] .. fence .. ',"kind":"release","name":' .. ARGV[3] .. '}')
end
if value then
  return 1
end
return 0
`)

// renewScript extends a session key and its lost set by the TTL.
//
//	KEYS[1] session key, KEYS[2] its lost set; ARGV[1] TTL in ms
//
// Returns {0} when the session key is gone, else {1, lost claims…}
// ("<fence>:<name>"; none in the usual case, when the set does not exist).
var renewScript = goredis.NewScript(`
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then
  return {0}
end
if redis.call('PEXPIRE', KEYS[2], ARGV[1]) == 0 then
  return {1}
end
local out = redis.call('SMEMBERS', KEYS[2])
table.insert(out, 1, 1)
return out
`)

// readScript reads elections atomically, three entries per election:
// {"held", value, holder's session PTTL} | {"vacant", last fence|false, 0}
// (no claim, or a claim whose session key is gone) | {"foreign", last
// fence|false, 0} (the key holds no claim record).
//
//	KEYS[1] fences hash, KEYS[i] claim key of election i-1
//	ARGV[1] session key prefix, ARGV[i] name of election i-1
var readScript = goredis.NewScript(recordLua + `
local out = {}
for i = 2, #KEYS do
  local kind, a, b = 'vacant', false, 0
  local value = redis.call('GET', KEYS[i])
  if value then
    local sid = holder(value)
    if not sid then
      kind = 'foreign'
    else
      local left = redis.call('PTTL', ARGV[1] .. sid)
      if left ~= -2 then
        kind, a, b = 'held', value, left
      end
    end
  end
  if kind ~= 'held' then
    a = lastFence(redis.call('HGET', KEYS[1], ARGV[i])) or false
  end
  out[#out + 1] = kind
  out[#out + 1] = a
  out[#out + 1] = b
end
return out
`)

// verifyScript checks claims without touching them: the renewal's check
// while the shared subscription is down (renew.go).
//
//	KEYS[i] claim key of claim i, ARGV[i] its tokenNeedle
//
// Returns the 1-based indexes of the claims the store no longer holds.
var verifyScript = goredis.NewScript(recordLua + `
local failed = {}
for i = 1, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if not value or not owns(value, ARGV[i]) then
    failed[#failed + 1] = i
  end
end
return failed
`)

// endSessionScript deletes a session key, which makes every claim of the
// session vacant, and announces it.
//
//	KEYS[1] session key, KEYS[2] its lost set; ARGV[1] channel, ARGV[2]
//	announcement
var endSessionScript = goredis.NewScript(`
redis.call('DEL', KEYS[2])
if redis.call('DEL', KEYS[1]) == 1 then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
  return 1
end
return 0
`)
