package redis

import (
	"context"
	"strings"

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

-- putListed writes records of a grant, given as key, value, px triples, each for its
-- px milliseconds (not at all when px <= 0), lists them in the grant's keys set
-- together with the keys already in listed (written by the caller, the longest
-- living for longest milliseconds) with one SADD, and stretches the set's TTL once,
-- to cover the longest.
local function putListed(set, listed, longest, ...)
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

-- put is putListed with nothing written before.
local function put(set, ...)
  putListed(set, {}, 0, ...)
end

-- revoke deletes every live key of a grant and leaves the revocation marker for as
-- long as the grant's keys set would have lived, which covers every replay marker.
-- Replay markers are not in the set, so they stay.
-- It returns whether the grant was known (live or revoked before), which is when the
-- caller records the revocation in the feed.
local function revoke(set, marker)
  local ttl = redis.call('PTTL', set)
  if ttl < 0 and redis.call('EXISTS', marker) == 1 then return true end
  local members = redis.call('SMEMBERS', set)
  for i = 1, #members, 1000 do
    redis.call('DEL', unpack(members, i, math.min(i + 999, #members)))
  end
  redis.call('DEL', set)
  if ttl > 0 then redis.call('SET', marker, '1', 'PX', ttl) end
  return ttl > 0
end
`

func script(body string) *goredis.Script { return goredis.NewScript(luaHelpers + body) }

// chain makes one script of several, run one after another in one call: a write and
// the bookkeeping that goes with it (the grant's indexes, the client's use) then cost
// one command, which concurrent requests' commands share (autopipeline.go), instead
// of a pipeline with a round trip and a connection of its own. Outside a Cluster only,
// since the parts' keys lie in several slots.
//
// ARGV starts with two counts per part, its keys and its arguments, and each part sees
// only its own KEYS and ARGV; a part given no keys is skipped (a client use that is
// not due). The first part is the write: its reply (a status, or a table whose first
// element is one) is the chain's. The next parts, ifWritten, run only when it answered
// OK, so nothing is indexed for a write that did not happen; an error of theirs fails
// the call. The last, always, runs whatever the write answered and its errors are
// dropped: a client's use is a use even when its request is refused (store.Grants).
func chain(write string, ifWritten []string, always string) *goredis.Script {
	var b strings.Builder
	b.WriteString(luaHelpers)
	part := func(body string) {
		b.WriteString("parts[#parts + 1] = function(KEYS, ARGV)\n")
		b.WriteString(body)
		b.WriteString("\nend\n")
	}
	b.WriteString("local parts = {}\n")
	part(write)
	for _, body := range ifWritten {
		part(body)
	}
	part(always)
	b.WriteString(`local ki, ai, reply, written = 1, 2 * #parts + 1, nil, false
for i = 1, #parts do
  local nk, na = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local k, a = {}, {}
  for j = 1, nk do k[j] = KEYS[ki + j - 1] end
  for j = 1, na do a[j] = ARGV[ai + j - 1] end
  ki, ai = ki + nk, ai + na
  if i == 1 then
    reply = parts[1](k, a)
    local status = reply
    if type(reply) == 'table' then status = reply[1] end
    written = status == 'OK'
  elseif nk == 0 then
    -- skipped
  elseif i == #parts then
    pcall(parts[i], k, a)
  elseif written then
    parts[i](k, a)
  end
end
return reply
`)
	return goredis.NewScript(b.String())
}

// chainPart is one part's keys and arguments, for chainArgs.
type chainPart struct {
	keys []string
	args []any
}

// chainArgs lays out the keys and arguments of chain's parts as the chain reads them.
func chainArgs(parts ...chainPart) ([]string, []any) {
	var keys []string
	var args []any
	for _, p := range parts {
		args = append(args, len(p.keys), len(p.args))
	}
	for _, p := range parts {
		keys = append(keys, p.keys...)
	}
	for _, p := range parts {
		args = append(args, p.args...)
	}
	return keys, args
}

// createClientScript: KEYS client, index[, source index]; ARGV record, px, id, expiry
// (unix ms), now (unix ms), limit. With a source index, a limit > 0 refuses the
// client when the source already has limit live registrations, answering
// 'LIMIT:<unix ms>' with the expiry of the source's earliest one.
var createClientScript = script(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 'EXISTS' end
local limit = tonumber(ARGV[6])
if KEYS[3] then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[5])
  if limit > 0 and redis.call('ZCARD', KEYS[3]) >= limit then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    return 'LIMIT:' .. first[2]
  end
end
local px = tonumber(ARGV[2])
if px > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', px)
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
  extend(KEYS[2], px)
  if KEYS[3] then
    redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
    extend(KEYS[3], px)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
return 'OK'
`)

// updateClientScript: KEYS client, index[, source index]; ARGV as createClientScript.
var updateClientScript = script(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 'NOTFOUND' end
local px = tonumber(ARGV[2])
if px > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', px)
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
  extend(KEYS[2], px)
  if KEYS[3] then
    redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
    extend(KEYS[3], px)
  end
else
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[3])
  if KEYS[3] then redis.call('ZREM', KEYS[3], ARGV[3]) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
return 'OK'
`)

// deleteClientScript: KEYS client, index; ARGV id, source index prefix. The source
// index is named by the stored record (same hash tag, so the same slot).
var deleteClientScript = script(`
local v = redis.call('GET', KEYS[1])
if v then
  local ok, rec = pcall(cjson.decode, v)
  if ok and type(rec) == 'table' and type(rec.source) == 'string' and rec.source ~= '' then
    redis.call('ZREM', ARGV[2] .. rec.source, ARGV[1])
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 'OK'
`)

// touchClientScript: KEYS client, index[, source index]; ARGV last_used_at and
// expires_at (each a JSON string, quotes included), expiry (unix ms), px, id.
//
// It rewrites only those two fields of the stored JSON, so a concurrent update's other
// fields survive. A field name can match only where it is a key: inside a JSON string
// every quote is escaped, so '"expires_at":"' cannot occur there, and the match must
// follow '{' or ','.
var touchClientScript = script(touchClientLua)

const touchClientLua = `
local v = redis.call('GET', KEYS[1])
if not v then return 'NOTFOUND' end
local px = tonumber(ARGV[4])
if px <= 0 then return 'OK' end
local function replace(s, field, value)
  local i, j = string.find(s, '[{,]"' .. field .. '":"[^"]*"')
  if not i then return nil end
  return string.sub(s, 1, i) .. '"' .. field .. '":' .. value .. string.sub(s, j + 1)
end
local rec = replace(v, 'expires_at', ARGV[2])
if not rec then return 'BADRECORD' end
local used = replace(rec, 'last_used_at', ARGV[1])
if not used then
  local i = string.find(rec, '[{,]"expires_at":')
  used = string.sub(rec, 1, i) .. '"last_used_at":' .. ARGV[1] .. ',' .. string.sub(rec, i + 1)
end
redis.call('SET', KEYS[1], used, 'PX', px)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[5])
extend(KEYS[2], px)
if KEYS[3] then
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[5])
  extend(KEYS[3], px)
end
return 'OK'
`

// requestApprovalScript: KEYS approval, index; ARGV record, px, id, expiry (unix ms),
// now (unix ms). Answers the record stored now: the live one there, or ARGV record.
var requestApprovalScript = script(`
local v = redis.call('GET', KEYS[1])
if v then return v end
local px = tonumber(ARGV[2])
if px > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', px)
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
  extend(KEYS[2], px)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
return ARGV[1]
`)

// setApprovalScript: as requestApprovalScript, replacing any record; answers OK.
var setApprovalScript = script(`
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
var redeemCodeScript = script(redeemCodeLua)

const redeemCodeLua = `
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
`

// rotateScript: KEYS old refresh, set, revoked, successor, access[, refresh];
// ARGV client, successor px, sealed successor, access, px[, refresh, px].
//
// It answers with a table: {status} or {'SUCCESSOR', sealed}. A live token becomes its
// replay marker and the new pair is written; the successor (a hash of client and
// sealed response) is kept for its own px only, in the grant's keys set so that
// revocation deletes it. Another request's marker is reuse: the same client inside the
// window gets the kept successor back, anyone else revokes the grant. An empty access
// record (ARGV[4]) settles a reuse only: it never rotates.
var rotateScript = script(rotateLua)

const rotateLua = `
local v = redis.call('GET', KEYS[1])
if not v then
  if redis.call('EXISTS', KEYS[3]) == 1 then return {'REVOKED'} end
  return {'NOTFOUND'}
end
local state = spent(v, KEYS[5])
if state == 'retry' then
  if redis.call('EXISTS', KEYS[3]) == 1 then return {'REVOKED'} end
  return {'OK'}
end
if state == 'reused' then
  if ARGV[1] ~= '' and redis.call('EXISTS', KEYS[3]) == 0 then
    local kept = redis.call('HMGET', KEYS[4], 'client', 'sealed')
    if kept[1] == ARGV[1] and kept[2] then return {'SUCCESSOR', kept[2]} end
  end
  revoke(KEYS[2], KEYS[3])
  return {'REFRESH_REUSED'}
end
if ARGV[4] == '' then return {'NOPAIR'} end
redis.call('SET', KEYS[1], MARKER .. ':' .. KEYS[5], 'KEEPTTL')
-- The successor is listed in the keys set with the new pair: one SADD, one extend.
local listed, px = {}, tonumber(ARGV[2])
if px > 0 then
  redis.call('HSET', KEYS[4], 'client', ARGV[1], 'sealed', ARGV[3])
  redis.call('PEXPIRE', KEYS[4], px)
  listed[1] = KEYS[4]
else
  px = 0
end
if KEYS[6] then
  putListed(KEYS[2], listed, px, KEYS[5], ARGV[4], ARGV[5], KEYS[6], ARGV[6], ARGV[7])
else
  putListed(KEYS[2], listed, px, KEYS[5], ARGV[4], ARGV[5])
end
redis.call('SREM', KEYS[2], KEYS[1])
return {'OK'}
`

// issueGrantScript: KEYS set, revoked, grant, access[, refresh];
// ARGV grant, px, access, px[, refresh, px].
//
// A grant issued without a code (client_credentials): written only under a fresh ID.
var issueGrantScript = script(issueGrantLua)

const issueGrantLua = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 'REVOKED' end
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then return 'EXISTS' end
if KEYS[5] then
  put(KEYS[1], KEYS[3], ARGV[1], ARGV[2], KEYS[4], ARGV[3], ARGV[4], KEYS[5], ARGV[5], ARGV[6])
else
  put(KEYS[1], KEYS[3], ARGV[1], ARGV[2], KEYS[4], ARGV[3], ARGV[4])
end
return 'OK'
`

// saveDeviceScript: KEYS device, poll; ARGV record, px, interval (ms).
var saveDeviceScript = script(`
local px = tonumber(ARGV[2])
if px <= 0 then return 'OK' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', px)
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'interval', ARGV[3])
redis.call('PEXPIRE', KEYS[2], px)
return 'OK'
`)

// denyDeviceScript: KEYS device, poll. The polling state gets the device's TTL again:
// HSET would otherwise leave a key without one, had it just expired.
var denyDeviceScript = script(`
local px = redis.call('PTTL', KEYS[1])
if px <= 0 then return 'NOTFOUND' end
redis.call('HSET', KEYS[2], 'denied', '1')
redis.call('PEXPIRE', KEYS[2], px)
return 'OK'
`)

// pollDeviceScript: KEYS device, poll, code; ARGV now (unix ms), slow-down step (ms).
//
// Answers {status, record, interval ms}. The approval is the code under the device
// code's hash (live, or its replay marker once redeemed).
var pollDeviceScript = script(`
local rec = redis.call('GET', KEYS[1])
if not rec then return {'NOTFOUND'} end
local st = redis.call('HMGET', KEYS[2], 'interval', 'last', 'denied')
local interval = tonumber(st[1]) or 0
local now = tonumber(ARGV[1])
local status = 'PENDING'
if st[3] then
  status = 'DENIED'
elseif redis.call('EXISTS', KEYS[3]) == 1 then
  status = 'APPROVED'
elseif st[2] and now - tonumber(st[2]) < interval then
  interval = interval + tonumber(ARGV[2])
  status = 'SLOW_DOWN'
end
redis.call('HSET', KEYS[2], 'interval', interval, 'last', now)
local px = redis.call('PTTL', KEYS[1])
if px > 0 then redis.call('PEXPIRE', KEYS[2], px) end
return {status, rec, tostring(interval)}
`)

// revokeGrantScript: KEYS set, revoked. NONE for a grant never seen (or long gone).
var revokeGrantScript = script(`
if revoke(KEYS[1], KEYS[2]) then return 'OK' end
return 'NONE'
`)

// feedAddScript: KEYS feed; ARGV member, retention (ms).
//
// The score is Redis's own clock, read in the same step as the ZADD, so scores follow
// the order entries were added in whatever replica added them: a reader that asks for
// everything from the latest score it saw misses nothing added after its read. The
// key's TTL is reset to the retention, so a quiet feed disappears on its own.
var feedAddScript = script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keep = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - keep))
redis.call('PEXPIRE', KEYS[1], keep)
return 'OK'
`)

// revokeAccessScript: KEYS access, set.
var revokeAccessScript = script(`
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], KEYS[1])
return 'OK'
`)

// indexGrantScript: KEYS index...; ARGV grant ID, grant expiry (unix ms), px, now (unix
// ms). Each index is a sorted set of grant IDs by expiry, so expired entries go by
// score. On a Cluster, where the indexes lie in different slots, it runs once per
// index; elsewhere once for all of them.
var indexGrantScript = script(indexGrantLua)

const indexGrantLua = `
local px = tonumber(ARGV[3])
for i = 1, #KEYS do
  if px > 0 then
    redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1])
    extend(KEYS[i], px)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[4])
end
return 'OK'
`

// releaseLeaseScript: KEYS lease; ARGV holder. Deletes the lease only if this holder
// has it.
var releaseLeaseScript = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 'OK'
`)

// redeemIndexedScript, issueIndexedScript and rotateTouchedScript are
// redeemCodeScript, issueGrantScript and rotateScript followed by the grant's indexes
// and the client's use, in one call outside a Cluster (chain).
var (
	redeemIndexedScript = chain(redeemCodeLua, []string{indexGrantLua}, touchClientLua)
	issueIndexedScript  = chain(issueGrantLua, []string{indexGrantLua}, touchClientLua)
	rotateTouchedScript = chain(rotateLua, nil, touchClientLua)
)

var allScripts = []*goredis.Script{
	redeemIndexedScript, issueIndexedScript, rotateTouchedScript,
	createClientScript, updateClientScript, deleteClientScript, touchClientScript,
	requestApprovalScript, setApprovalScript,
	saveCodeScript, saveLoginScript, redeemCodeScript, rotateScript, revokeGrantScript, revokeAccessScript,
	issueGrantScript, saveDeviceScript, denyDeviceScript, pollDeviceScript,
	indexGrantScript,
	releaseLeaseScript,
	feedAddScript,
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
