package redis

import (
	"context"

	goredis "github.com/redis/go-redis/v9"
)

// The Lua scripts. Each runs atomically on one slot: a grant's keys share {g:ID}, a
// tenant's client keys {prefix}. Keys a script reaches through the grant's keys set
// are in the same slot, which Redis Cluster permits.
//
// Each script answers with one status word, mapped to a store error by the caller.
// A TTL argument of zero or less means "dead on arrival": the record is not written.

// luaHelpers is prepended to every script.
const luaHelpers = `
local MARKER = '` + replayMarker + `'

-- spent tells what a code or refresh token key holds: 'live', 'retry' when it was
-- spent by this very request (its marker names the access key this request writes;
-- the script runs again because its first reply was lost), or 'reused'.
local function spent(v, access)
  if string.sub(v, 1, #MARKER) ~= MARKER then return 'live' end
  if v == MARKER .. ':' .. access then return 'retry' end
  return 'reused'
end

-- extend stretches key's TTL to at least px milliseconds.
local function extend(key, px)
  if redis.call('PTTL', key) < px then redis.call('PEXPIRE', key, px) end
end

-- put writes records of a grant, given as key, value, px triples, each for its px
-- milliseconds (not at all when px <= 0), lists them in the grant's keys set with one
-- SADD, and stretches the set's TTL once, to cover the longest.
local function put(set, ...)
  local listed, longest = {}, 0
  for i = 1, select('#', ...), 3 do
    local key, value, px = select(i, ...)
    px = tonumber(px)
    if px > 0 then
      redis.call('SET', key, value, 'PX', px)
      listed[#listed + 1] = key
      if px > longest then longest = px end
    end
  end
  if #listed == 0 then return end
  redis.call('SADD', set, unpack(listed))
  extend(set, longest)
end

-- revoke deletes every live key of a grant and leaves the revocation marker for as
-- long as the grant's keys set would have lived, which covers every replay marker.
-- Replay markers are not in the set, so they stay.
local function revoke(set, marker)
  local ttl = redis.call('PTTL', set)
  local members = redis.call('SMEMBERS', set)
  for i = 1, #members, 1000 do
    redis.call('DEL', unpack(members, i, math.min(i + 999, #members)))
  end
  redis.call('DEL', set)
  if ttl > 0 then redis.call('SET', marker, '1', 'PX', ttl) end
end
`

func script(body string) *goredis.Script { return goredis.NewScript(luaHelpers + body) }

// createClientScript: KEYS client, index; ARGV record, px, id, expiry (unix ms), now (unix ms).
var createClientScript = script(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 'EXISTS' end
local px = tonumber(ARGV[2])
if px > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', px)
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
  extend(KEYS[2], px)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
return 'OK'
`)

// updateClientScript: as createClientScript.
var updateClientScript = script(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 'NOTFOUND' end
local px = tonumber(ARGV[2])
if px > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', px)
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
  extend(KEYS[2], px)
else
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[3])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
return 'OK'
`)

// deleteClientScript: KEYS client, index; ARGV id.
var deleteClientScript = script(`
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 'OK'
`)

// saveCodeScript: KEYS code, set, revoked; ARGV record, px.
var saveCodeScript = script(`
if redis.call('EXISTS', KEYS[3]) == 1 then return 'REVOKED' end
if redis.call('EXISTS', KEYS[1]) == 1 then return 'EXISTS' end
put(KEYS[2], KEYS[1], ARGV[1], ARGV[2])
return 'OK'
`)

// saveLoginScript is saveCodeScript that first writes the user's upstream token, as
// SaveLogin's pipeline does on a Cluster, where that key lies in another slot:
// KEYS code, set, revoked, upstream; ARGV record, px, upstream record, upstream px.
var saveLoginScript = script(`
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[4])
else
  redis.call('DEL', KEYS[4])
end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'REVOKED' end
if redis.call('EXISTS', KEYS[1]) == 1 then return 'EXISTS' end
put(KEYS[2], KEYS[1], ARGV[1], ARGV[2])
return 'OK'
`)

// redeemCodeScript: KEYS code, set, revoked, grant, access[, refresh];
// ARGV grant, px, access, px[, refresh, px].
//
// A live code becomes its replay marker (same TTL) and the grant and tokens are
// written; another request's marker means replay, which revokes the grant.
var redeemCodeScript = script(`
local v = redis.call('GET', KEYS[1])
if not v then
  if redis.call('EXISTS', KEYS[3]) == 1 then return 'REVOKED' end
  return 'NOTFOUND'
end
local state = spent(v, KEYS[5])
if state == 'retry' then
  if redis.call('EXISTS', KEYS[3]) == 1 then return 'REVOKED' end
  return 'OK'
end
if state == 'reused' then
  revoke(KEYS[2], KEYS[3])
  return 'CODE_REUSED'
end
redis.call('SET', KEYS[1], MARKER .. ':' .. KEYS[5], 'KEEPTTL')
if KEYS[6] then
  put(KEYS[2], KEYS[4], ARGV[1], ARGV[2], KEYS[5], ARGV[3], ARGV[4], KEYS[6], ARGV[5], ARGV[6])
else
  put(KEYS[2], KEYS[4], ARGV[1], ARGV[2], KEYS[5], ARGV[3], ARGV[4])
end
-- Removed last, so that the set never empties (and vanishes) on the way.
redis.call('SREM', KEYS[2], KEYS[1])
return 'OK'
`)

// rotateScript: KEYS old refresh, set, revoked, access[, refresh]; ARGV access, px[, refresh, px].
var rotateScript = script(`
local v = redis.call('GET', KEYS[1])
if not v then
  if redis.call('EXISTS', KEYS[3]) == 1 then return 'REVOKED' end
  return 'NOTFOUND'
end
local state = spent(v, KEYS[4])
if state == 'retry' then
  if redis.call('EXISTS', KEYS[3]) == 1 then return 'REVOKED' end
  return 'OK'
end
if state == 'reused' then
  revoke(KEYS[2], KEYS[3])
  return 'REFRESH_REUSED'
end
redis.call('SET', KEYS[1], MARKER .. ':' .. KEYS[4], 'KEEPTTL')
if KEYS[5] then
  put(KEYS[2], KEYS[4], ARGV[1], ARGV[2], KEYS[5], ARGV[3], ARGV[4])
else
  put(KEYS[2], KEYS[4], ARGV[1], ARGV[2])
end
redis.call('SREM', KEYS[2], KEYS[1])
return 'OK'
`)

// revokeGrantScript: KEYS set, revoked.
var revokeGrantScript = script(`
revoke(KEYS[1], KEYS[2])
return 'OK'
`)

// revokeAccessScript: KEYS access, set.
var revokeAccessScript = script(`
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], KEYS[1])
return 'OK'
`)

var allScripts = []*goredis.Script{
	createClientScript, updateClientScript, deleteClientScript,
	saveCodeScript, saveLoginScript, redeemCodeScript, rotateScript, revokeGrantScript, revokeAccessScript,
}

// loadScripts loads every script (on a Cluster, into every master), so the first
// EVALSHA finds it. Failure is harmless: Script.Run falls back to EVAL.
func (s *Store) loadScripts(ctx context.Context) {
	for _, sc := range allScripts {
		if sc.Load(ctx, s.rdb).Err() != nil {
			return
		}
	}
}

// run runs a script and returns its status word.
func (s *Store) run(ctx context.Context, op string, sc *goredis.Script, keys []string, args ...any) (string, error) {
	status, err := sc.Run(ctx, scripter{s.rdb, s}, keys, args...).Text()
	if err != nil {
		return "", unavailable(op, err)
	}
	return status, nil
}
