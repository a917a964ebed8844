// Package redis is the production store.Store, on Redis through go-redis's universal
// client: standalone, Sentinel (Options.MasterName) or Cluster (several Addrs).
//
// Keys. Every key starts with the tenant prefix. All keys of one grant share the hash
// tag {g:<grantID>}, and all clients of a tenant the tag {<prefix>}, so every multi-key
// operation is one Lua script on one slot, also on Redis Cluster:
//
//	<prefix>:{<prefix>}:client:<id>   client record (JSON)
//	<prefix>:{<prefix>}:clients       sorted set of client IDs by expiry, for CountClients and ListClients
//	<prefix>:{<prefix>}:clients:src:<source> the same, of one source address, for the per-source limit
//	<prefix>:pending:<stateHash>      pending authorization, taken with GETDEL
//	<prefix>:upstream:<userID>        upstream token
//	<prefix>:lease:<name>             lease, holding its holder's random ID (SET NX PX)
//	<prefix>:{g:<id>}:grant           grant record
//	<prefix>:{g:<id>}:code:<hash>     code; after redemption its replay marker
//	<prefix>:{g:<id>}:at:<hash>       access token
//	<prefix>:{g:<id>}:rt:<hash>       refresh token; after rotation its replay marker
//	<prefix>:{g:<id>}:succ:<hash>     hash {client, sealed}: a rotation's successor, for the grace window only
//	<prefix>:{g:<id>}:keys            set of the grant's live keys, which revocation deletes
//	<prefix>:{g:<id>}:revoked         revocation marker
//	<prefix>:{g:<id>}:dev:<hash>      RFC 8628 device authorization (JSON)
//	<prefix>:{g:<id>}:devpoll:<hash>  hash {interval, last, denied}: its polling state
//	<prefix>:ucode:<hash>             user code, pointing at its device authorization
//	<prefix>:grants                   sorted set of the tenant's grant IDs by expiry
//	<prefix>:grants:user:<userID>     the same, of one user
//	<prefix>:grants:client:<clientID> the same, of one client
//
// The three grant indexes live in other slots than the grant they list, so no script
// can write both. RedeemCode sends the index writes in the same pipeline as the grant's
// script, ahead of it (on a Cluster the nodes run their parts in parallel): once
// RedeemCode returns, the grant is listed, so revoking everything a list names cannot
// miss a grant whose redemption had finished. ListGrants drops an entry only once its
// grant has neither its record nor its keys set (it expired or was revoked): while the
// keys set lives, the code may still be on its way to redemption, and an entry written
// ahead of its grant survives.
//
//	<prefix>:{g:<id>}:jti:<jti>       revoked JWT access token, until it expires
//	<prefix>:revocations              the revocation feed: sorted set of JSON
//	                                  [grantID, jti] by Redis time (ms), trimmed to
//	                                  the retention
//
// The feed key is in a slot of its own, so on a Cluster no grant script can write it:
// the backend adds the entry right after a script reports that it revoked a grant
// (RevokeGrant, a replayed code, a reused refresh token). Should that second step fail,
// the call returns the error and the server, which revokes the grant again on every
// replay, records it then.
//
// A replay marker replaces the record in place and keeps its TTL, so it lasts exactly
// as long as the code or token would have. The keys set's TTL is stretched to the
// latest expiry of anything added to it, and the revocation marker inherits it.
//
// TTLs. Every key gets one when it is written (PX), relative to this process's clock,
// so a clock difference between Redis and the server cannot stretch or cut a record's
// life; reads also check ExpiresAt. Redis must not evict keys: Ping refuses any
// maxmemory-policy other than noeviction.
//
// Round trips. GetAccessToken, the introspection hot path, is one GET; rotation and
// revocation are one EVALSHA each (go-redis falls back to EVAL when the server lacks
// the script); redemption is one script with the grant's three index writes and the
// client's use (chain in scripts.go), and so is a rotation that records a use; on a
// Cluster, where those keys lie in different slots, each is a pipeline of a script
// per slot; ReadTokenRequest (a token request's client and code or refresh token) is one MGET
// and SaveLogin (the callback's upstream token and code) one script, each a pipeline
// on a Cluster, where their keys lie in two slots; ListGrants is one pipeline for the
// index and one per 500 grants. Under load, the single commands and scripts of
// concurrent requests share round trips through go-redis's autopipelining
// (autopipeline.go); pipelines go to the client as before. Needs Redis 6.2 or later
// (GETDEL).
package redis

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// Options configures New.
type Options struct {
	// Addrs are the Redis addresses ("host:port"): one for a standalone server, the
	// Sentinels' when MasterName is set, several (or one with Cluster) for a Cluster.
	Addrs []string
	// Cluster selects Cluster mode with a single address, such as a managed
	// service's configuration endpoint.
	Cluster bool
	// MasterName is the Sentinel master name; set it to connect through Sentinel.
	MasterName string
	// Username and Password authenticate to Redis (ACL user, or requirepass alone).
	Username string
	Password string
	// SentinelUsername and SentinelPassword authenticate to the Sentinels, when they
	// require it.
	SentinelUsername string
	SentinelPassword string
	// DB is the database number; Redis Cluster has only 0.
	DB int
	// TLS, when set, is used for every connection.
	TLS *tls.Config
	// Prefix is the tenant: the start of every key. Required; it must not contain
	// '{' or '}', which would change the Cluster hash slots.
	Prefix string
	// RevocationRetention is how long revocation feed entries are kept; zero means
	// store.DefaultRevocationRetention.
	RevocationRetention time.Duration
	// SkipEvictionPolicyCheck stops Ping from reading maxmemory-policy. Set it only
	// where CONFIG is disabled (many managed Redis services) and you have made sure
	// the policy is noeviction.
	SkipEvictionPolicyCheck bool
}

// pipelineBufferSize is go-redis's default buffer for ordinary connections.
const pipelineBufferSize = 32 << 10

// ErrEvictionPolicy is returned by Ping when Redis may evict keys: every key here has a
// TTL, so any volatile-* or allkeys-* policy can drop a registered client or a live
// grant under memory pressure.
var ErrEvictionPolicy = errors.New("redis maxmemory-policy is not noeviction")

// Store is the Redis backend. It is safe for concurrent use.
type Store struct {
	rdb        goredis.UniversalClient
	ap         *goredis.AutoPipeliner // nil: each command on its own (autopipeline.go)
	ownsClient bool
	skipPolicy bool
	retention  time.Duration
	k          keys
	// holder names this Store value as a lease holder (store.Leases).
	holder string
}

var _ store.Store = (*Store)(nil)

// New connects to Redis as opts says. It does not fail when Redis is down, so the
// server can start and report not-ready (Ping) until Redis is back. New tries to load
// the Lua scripts, so that the first redemption and rotation need no extra round trip;
// ctx bounds that, and should carry a short deadline, since go-redis retries a refused
// connection for about two seconds.
func New(ctx context.Context, opts Options) (*Store, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("redis store: no address")
	}
	rdb := goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs:            opts.Addrs,
		MasterName:       opts.MasterName,
		Username:         opts.Username,
		Password:         opts.Password,
		SentinelUsername: opts.SentinelUsername,
		SentinelPassword: opts.SentinelPassword,
		DB:               opts.DB,
		TLSConfig:        opts.TLS,
		IsClusterMode:    opts.Cluster,
		// Let the caller's context deadline bound each command, so a slow Redis
		// cannot hold a request longer than the server allows it.
		ContextTimeoutEnabled: true,
		// The store's pipelines are two or three small commands (ReadTokenRequest,
		// SaveLogin): give their connections the ordinary buffers, not the 128 KiB
		// each way go-redis sizes them for bulk loading by default.
		PipelineReadBufferSize:  pipelineBufferSize,
		PipelineWriteBufferSize: pipelineBufferSize,
	})
	s, err := newStore(rdb, opts)
	if c, ok := rdb.(asyncAutoPipeliner); ok && err == nil {
		// The autopipeliner is the client's, and closes with it: only a client the
		// Store owns gets one.
		s.ap, err = c.AsyncAutoPipelineWithOptions(autoPipelineOptions())
	}
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	s.ownsClient = true
	s.loadScripts(ctx)
	return s, nil
}

// NewFromClient wraps a client the caller made and keeps owning: Close leaves it
// open. Only Prefix, RevocationRetention and SkipEvictionPolicyCheck of opts are used.
func NewFromClient(rdb goredis.UniversalClient, opts Options) (*Store, error) {
	return newStore(rdb, opts)
}

func newStore(rdb goredis.UniversalClient, opts Options) (*Store, error) {
	if opts.Prefix == "" {
		return nil, errors.New("redis store: Prefix (the tenant) is required")
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("redis store: Prefix %q contains '{' or '}', which would break the Cluster hash tags", opts.Prefix)
	}
	retention := opts.RevocationRetention
	if retention <= 0 {
		retention = store.DefaultRevocationRetention
	}
	return &Store{rdb: rdb, skipPolicy: opts.SkipEvictionPolicyCheck, retention: retention, k: keys{opts.Prefix}, holder: rand.Text()}, nil
}

// Client returns the underlying go-redis client, for metrics and tests.
func (s *Store) Client() goredis.UniversalClient { return s.rdb }

// Close closes the client if New made it.
func (s *Store) Close() error {
	if !s.ownsClient {
		return nil
	}
	return s.rdb.Close()
}

// Ping checks that Redis answers and that it will not evict our keys: on a Cluster,
// every node. A Redis that cannot be reached gives ErrUnavailable; a wrong eviction
// policy ErrEvictionPolicy, with the policy and the fix in the message.
func (s *Store) Ping(ctx context.Context) error {
	if cc, ok := s.rdb.(*goredis.ClusterClient); ok {
		if err := cc.Ping(ctx).Err(); err != nil {
			return unavailable("ping", err)
		}
		return cc.ForEachShard(ctx, func(ctx context.Context, node *goredis.Client) error {
			return s.checkNode(ctx, node, node.Options().Addr)
		})
	}
	where := "Redis"
	if c, ok := s.rdb.(*goredis.Client); ok {
		where = c.Options().Addr
		if where == "FailoverClient" { // go-redis's placeholder for a Sentinel-managed master
			where = "the Sentinel master"
		}
	}
	return s.checkNode(ctx, s.rdb, where)
}

// checkNode pings one node and reads its maxmemory-policy.
func (s *Store) checkNode(ctx context.Context, c goredis.Cmdable, where string) error {
	if err := c.Ping(ctx).Err(); err != nil {
		return unavailable("ping "+where, err)
	}
	if s.skipPolicy {
		return nil
	}
	cfg, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	var refused goredis.Error
	switch {
	case errors.As(err, &refused):
		return fmt.Errorf("redis store: cannot check maxmemory-policy on %s: CONFIG GET is refused (%v), as on many managed "+
			"Redis services; make sure the policy is noeviction and set SkipEvictionPolicyCheck", where, err)
	case err != nil:
		return unavailable("read maxmemory-policy on "+where, err)
	}
	if policy := cfg["maxmemory-policy"]; policy != "noeviction" {
		return fmt.Errorf("redis store: %w: it is %q on %s; with it Redis may evict registered clients and live grants. "+
			"Set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, or in redis.conf)",
			ErrEvictionPolicy, policy, where)
	}
	return nil
}

// unavailable wraps a Redis failure (connection, timeout, failover, OOM) so that the
// server answers 503 and retries later rather than 500; the cause stays inspectable.
func unavailable(op string, err error) error {
	return fmt.Errorf("redis store: %s: %w: %w", op, store.ErrUnavailable, err)
}

// keys builds every key name, so the layout in the package doc lives in one place.
type keys struct{ prefix string }

func (k keys) client(id string) string { return k.prefix + ":{" + k.prefix + "}:client:" + id }
func (k keys) clients() string         { return k.prefix + ":{" + k.prefix + "}:clients" }

// clientSource is the index of one source's registrations; clientSource("") is the
// prefix of every such key (the delete script appends the source it reads).
func (k keys) clientSource(src string) string {
	return k.prefix + ":{" + k.prefix + "}:clients:src:" + src
}
func (k keys) approval(id string) string {
	return k.prefix + ":{" + k.prefix + "}:approval:" + id
}
func (k keys) approvals() string       { return k.prefix + ":{" + k.prefix + "}:approvals" }
func (k keys) pending(h string) string { return k.prefix + ":pending:" + h }
func (k keys) feed() string            { return k.prefix + ":revocations" }
func (k keys) upstream(u string) string {
	return k.prefix + ":upstream:" + u
}
func (k keys) lease(name string) string { return k.prefix + ":lease:" + name }

func (k keys) grantIndex() string           { return k.prefix + ":grants" }
func (k keys) userGrants(u string) string   { return k.prefix + ":grants:user:" + u }
func (k keys) clientGrants(c string) string { return k.prefix + ":grants:client:" + c }

// grant returns the key builder for one grant.
func (k keys) grant(id string) grantKeys { return grantKeys{k.prefix + ":{g:" + id + "}"} }

type grantKeys struct{ base string }

func (g grantKeys) grant() string          { return g.base + ":grant" }
func (g grantKeys) set() string            { return g.base + ":keys" }
func (g grantKeys) revoked() string        { return g.base + ":revoked" }
func (g grantKeys) code(h string) string   { return g.base + ":code:" + h }
func (g grantKeys) access(h string) string { return g.base + ":at:" + h }
func (g grantKeys) jti(id string) string   { return g.base + ":jti:" + id }
func (g grantKeys) refresh(h string) string {
	return g.base + ":rt:" + h
}
func (g grantKeys) successor(h string) string { return g.base + ":succ:" + h }
func (g grantKeys) device(h string) string    { return g.base + ":dev:" + h }
func (g grantKeys) devicePoll(h string) string {
	return g.base + ":devpoll:" + h
}

func (k keys) userCode(h string) string { return k.prefix + ":ucode:" + h }

// checkGrantID refuses IDs that would end the hash tag early and split a grant's keys
// over several slots.
func checkGrantID(id string) error {
	if id == "" || strings.ContainsAny(id, "{}") {
		return fmt.Errorf("redis store: invalid grant ID %q", id)
	}
	return nil
}

// ttl is how many whole milliseconds remain until exp on this process's clock; zero
// or less means the record is dead on arrival and is not written. Rounding down keeps
// a key from outliving its ExpiresAt.
func ttl(exp time.Time) int64 { return time.Until(exp).Milliseconds() }

// live reports whether a record expiring at exp may still be returned.
func live(exp time.Time) bool { return time.Now().Before(exp) }

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
