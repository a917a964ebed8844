// Package memory is the in-process store.Store: maps behind one mutex, for a single
// replica and for development. Nothing survives a restart, and a second replica sees
// none of it; use the redis backend for that.
//
// Time comes from an injected clock, so tests can move it. Expired records are never
// returned (each read checks ExpiresAt) and a janitor goroutine deletes them now and
// then so that memory stays bounded; Close stops it.
package memory

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// DefaultJanitorInterval is how often the janitor sweeps expired records unless
// Options says otherwise.
const DefaultJanitorInterval = time.Minute

// Options configures a Store.
type Options struct {
	// Prefix names the tenant. Stores sharing a database through WithPrefix see only
	// their own tenant's records.
	Prefix string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// JanitorInterval is how often expired records are deleted; zero means
	// DefaultJanitorInterval, negative disables the janitor (reads still check expiry).
	JanitorInterval time.Duration
	// RevocationRetention is how long revocation feed entries are kept; zero means
	// store.DefaultRevocationRetention. Stores made with WithPrefix share it.
	RevocationRetention time.Duration
}

// Store is the memory backend. The zero value is not usable; call New.
type Store struct {
	db     *database
	prefix string
	// root is set on the Store that New returned: it owns the janitor.
	root bool
	// holder names this Store value as a lease holder, as each Redis store (each
	// replica) has its own.
	holder string
}

var _ store.Store = (*Store)(nil)

// database holds the records of every tenant, keyed by tenant-qualified keys.
type database struct {
	now       func() time.Time
	retention time.Duration

	mu       sync.Mutex
	clients  map[string]store.Client
	pending  map[string]store.PendingAuthorization
	grants   map[string]*grantState
	upstream map[string]upstreamEntry
	// index holds the grant IDs of each user, each client and each tenant (see
	// indexKeys), as the Redis backend's index sets do. Entries of grants that are
	// gone are dropped by ListGrants and the janitor.
	index  map[string]map[string]struct{}
	leases map[string]leaseEntry
	// feeds are the revocation feeds, by tenant prefix, each keyed by feedMember so
	// that revoking the same thing again moves its entry rather than adding one.
	feeds map[string]map[feedMember]time.Time
	// jtis are revoked JWT IDs, by key(grantID + NUL + jti), until their expiry.
	jtis map[string]time.Time
	// devices are RFC 8628 device authorizations by tenant, grant and device code
	// hash; userCodes index them by tenant and user code hash.
	devices   map[string]*deviceEntry
	userCodes map[string]userCodeEntry
	// approvals are the approval-mode records (store.ClientApprovals).
	approvals map[string]store.ClientApproval

	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
}

// grantState is everything stored under one grant ID, as the Redis backend keeps it
// under one hash tag.
type grantState struct {
	grant   *store.Grant // nil until a code is redeemed, and after revocation
	codes   map[string]*codeEntry
	access  map[string]store.Token
	refresh map[string]*refreshEntry
	// revoked is set by RevokeGrant and lasts until horizon.
	revoked bool
	// horizon is the latest ExpiresAt of anything ever stored under the grant: until
	// then a replay marker or the revocation may matter; after it the state goes.
	horizon time.Time
}

// codeEntry is a code, or after redemption its replay marker (until code.ExpiresAt).
type codeEntry struct {
	code     store.AuthorizationCode
	redeemed bool
}

// refreshEntry is a refresh token, or after rotation its replay marker with, for the
// grace window, the rotation's successor.
type refreshEntry struct {
	token   store.Token
	rotated bool
	succ    *store.Successor // nil: no window, or it passed, or the grant was revoked
}

// deviceEntry is a device authorization with its polling state.
type deviceEntry struct {
	d        store.DeviceAuthorization
	interval time.Duration
	lastPoll time.Time
	denied   bool
}

// userCodeEntry points a user code at its device authorization.
type userCodeEntry struct {
	ref       store.DeviceRef
	expiresAt time.Time
}

// leaseEntry is a held lease: who holds it and until when.
type leaseEntry struct {
	holder    string
	expiresAt time.Time
}

type upstreamEntry struct {
	token     store.UpstreamToken
	expiresAt time.Time
}

// New returns an empty store and starts its janitor.
func New(opts Options) *Store {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	db := &database{
		now:       now,
		clients:   map[string]store.Client{},
		pending:   map[string]store.PendingAuthorization{},
		grants:    map[string]*grantState{},
		upstream:  map[string]upstreamEntry{},
		index:     map[string]map[string]struct{}{},
		leases:    map[string]leaseEntry{},
		devices:   map[string]*deviceEntry{},
		userCodes: map[string]userCodeEntry{},
		feeds:     map[string]map[feedMember]time.Time{},
		jtis:      map[string]time.Time{},
		stop:      make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	db.retention = opts.RevocationRetention
	if db.retention <= 0 {
		db.retention = store.DefaultRevocationRetention
	}
	db.approvals = map[string]store.ClientApproval{}
	interval := opts.JanitorInterval
	if interval == 0 {
		interval = DefaultJanitorInterval
	}
	if interval > 0 {
		go db.janitor(interval)
	} else {
		close(db.stopped)
	}
	return &Store{db: db, prefix: opts.Prefix, root: true, holder: rand.Text()}
}

// WithPrefix returns a store for another tenant in the same database, as two
// tenants share one Redis. Closing it is a no-op; the Store from New owns the
// database.
func (s *Store) WithPrefix(prefix string) *Store {
	return &Store{db: s.db, prefix: prefix, holder: rand.Text()}
}

// Close stops the janitor. The records stay readable; Close on a WithPrefix store
// does nothing.
func (s *Store) Close() error {
	if s.root {
		s.db.closeOnce.Do(func() { close(s.db.stop) })
		<-s.db.stopped
	}
	return nil
}

// Ping always succeeds: memory is always there.
func (s *Store) Ping(context.Context) error { return nil }

// key qualifies id with the tenant. NUL cannot occur in a prefix from configuration,
// so no two tenants' keys collide.
func (s *Store) key(id string) string { return s.prefix + "\x00" + id }

// live reports whether a record expiring at exp may still be returned.
func live(exp, now time.Time) bool { return now.Before(exp) }

// CreateClient implements store.Clients.
func (s *Store) CreateClient(_ context.Context, c store.Client) error {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	k := s.key(c.ID)
	if old, ok := db.clients[k]; ok && live(old.ExpiresAt, db.now()) {
		return store.ErrAlreadyExists
	}
	db.clients[k] = cloneClient(c)
	return nil
}

// GetClient implements store.Clients.
func (s *Store) GetClient(_ context.Context, id string) (store.Client, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	c, ok := db.clients[s.key(id)]
	if !ok || !live(c.ExpiresAt, db.now()) {
		return store.Client{}, store.ErrNotFound
	}
	return cloneClient(c), nil
}

// UpdateClient implements store.Clients.
func (s *Store) UpdateClient(_ context.Context, c store.Client) error {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	k := s.key(c.ID)
	if old, ok := db.clients[k]; !ok || !live(old.ExpiresAt, db.now()) {
		return store.ErrNotFound
	}
	db.clients[k] = cloneClient(c)
	return nil
}

// DeleteClient implements store.Clients.
func (s *Store) DeleteClient(_ context.Context, id string) error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	delete(s.db.clients, s.key(id))
	return nil
}

// CountClients implements store.Clients.
func (s *Store) CountClients(context.Context) (int, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now, prefix, n := db.now(), s.key(""), 0
	for k, c := range db.clients {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix && live(c.ExpiresAt, now) {
			n++
		}
	}
	return n, nil
}

// CreateClientLimited implements store.Clients.
func (s *Store) CreateClientLimited(_ context.Context, c store.Client, limit int) error {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now, k := db.now(), s.key(c.ID)
	if old, ok := db.clients[k]; ok && live(old.ExpiresAt, now) {
		return store.ErrAlreadyExists
	}
	if limit > 0 && c.Source != "" {
		n, first := 0, time.Time{}
		for _, o := range s.clientsLocked(now) {
			if o.Source != c.Source {
				continue
			}
			if n++; first.IsZero() || o.ExpiresAt.Before(first) {
				first = o.ExpiresAt
			}
		}
		if n >= limit {
			return &store.SourceLimitError{FreeAt: first}
		}
	}
	db.clients[k] = cloneClient(c)
	return nil
}

// TouchClient implements store.Clients.
func (s *Store) TouchClient(_ context.Context, u store.ClientUse) error {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	return s.touchLocked(u, db.now())
}

func (s *Store) touchLocked(u store.ClientUse, now time.Time) error {
	k := s.key(u.ClientID)
	c, ok := s.db.clients[k]
	if !ok || !live(c.ExpiresAt, now) {
		return store.ErrNotFound
	}
	c.LastUsedAt, c.ExpiresAt = u.LastUsedAt, u.ExpiresAt
	s.db.clients[k] = c
	return nil
}

// useLocked applies a TokenPair's ClientUse; like Redis, it reports nothing.
func (s *Store) useLocked(u *store.ClientUse, now time.Time) {
	if u != nil {
		_ = s.touchLocked(*u, now)
	}
}

// ListClients implements store.Clients.
func (s *Store) ListClients(context.Context) ([]store.Client, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	out := s.clientsLocked(db.now())
	store.SortClients(out)
	return out, nil
}

// clientsLocked returns copies of the tenant's live clients; the caller holds mu.
func (s *Store) clientsLocked(now time.Time) []store.Client {
	prefix := s.key("")
	var out []store.Client
	for k, c := range s.db.clients {
		if strings.HasPrefix(k, prefix) && live(c.ExpiresAt, now) {
			out = append(out, cloneClient(c))
		}
	}
	return out
}

// RequestApproval implements store.ClientApprovals.
func (s *Store) RequestApproval(_ context.Context, a store.ClientApproval) (store.ClientApproval, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	k := s.key(a.ClientID)
	if old, ok := db.approvals[k]; ok && live(old.ExpiresAt, db.now()) {
		return cloneApproval(old), nil
	}
	db.approvals[k] = cloneApproval(a)
	return cloneApproval(a), nil
}

// GetApproval implements store.ClientApprovals.
func (s *Store) GetApproval(_ context.Context, clientID string) (store.ClientApproval, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	a, ok := db.approvals[s.key(clientID)]
	if !ok || !live(a.ExpiresAt, db.now()) {
		return store.ClientApproval{}, store.ErrNotFound
	}
	return cloneApproval(a), nil
}

// SetApproval implements store.ClientApprovals.
func (s *Store) SetApproval(_ context.Context, a store.ClientApproval) error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	s.db.approvals[s.key(a.ClientID)] = cloneApproval(a)
	return nil
}

// ListApprovals implements store.ClientApprovals.
func (s *Store) ListApprovals(_ context.Context, status store.ApprovalStatus) ([]store.ClientApproval, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now, prefix := db.now(), s.key("")
	out := []store.ClientApproval{}
	for k, a := range db.approvals {
		if strings.HasPrefix(k, prefix) && live(a.ExpiresAt, now) && (status == "" || a.Status == status) {
			out = append(out, cloneApproval(a))
		}
	}
	store.SortApprovals(out)
	return out, nil
}

// DeleteApproval implements store.ClientApprovals.
func (s *Store) DeleteApproval(_ context.Context, clientID string) error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	delete(s.db.approvals, s.key(clientID))
	return nil
}

// SavePending implements store.PendingAuthorizations.
func (s *Store) SavePending(_ context.Context, stateHash string, p store.PendingAuthorization) error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	p.Resource = slices.Clone(p.Resource)
	s.db.pending[s.key(stateHash)] = p
	return nil
}

// TakePending implements store.PendingAuthorizations.
func (s *Store) TakePending(_ context.Context, stateHash string) (store.PendingAuthorization, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	k := s.key(stateHash)
	p, ok := db.pending[k]
	delete(db.pending, k)
	if !ok || !live(p.ExpiresAt, db.now()) {
		return store.PendingAuthorization{}, store.ErrNotFound
	}
	return p, nil
}

// grantLocked returns the live state of a grant, or nil; the caller holds mu.
func (s *Store) grantLocked(grantID string, now time.Time) *grantState {
	g := s.db.grants[s.key(grantID)]
	if g == nil || !live(g.horizon, now) {
		return nil
	}
	return g
}

// grantForWriteLocked returns the state of a grant, creating it if need be, with its
// horizon extended to exp; the caller holds mu.
func (s *Store) grantForWriteLocked(grantID string, now, exp time.Time) *grantState {
	g := s.grantLocked(grantID, now)
	if g == nil {
		g = &grantState{
			codes:   map[string]*codeEntry{},
			access:  map[string]store.Token{},
			refresh: map[string]*refreshEntry{},
		}
		s.db.grants[s.key(grantID)] = g
	}
	if exp.After(g.horizon) {
		g.horizon = exp
	}
	return g
}

// SaveCode implements store.Grants.
func (s *Store) SaveCode(_ context.Context, grantID, codeHash string, c store.AuthorizationCode) error {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now := db.now()
	if g := s.grantLocked(grantID, now); g != nil {
		if g.revoked {
			return store.ErrGrantRevoked
		}
		if e := g.codes[codeHash]; e != nil && live(e.code.ExpiresAt, now) {
			return store.ErrAlreadyExists
		}
	}
	c.Resource = slices.Clone(c.Resource)
	g := s.grantForWriteLocked(grantID, now, c.ExpiresAt)
	g.codes[codeHash] = &codeEntry{code: c}
	return nil
}

// PeekCode implements store.Grants.
func (s *Store) PeekCode(_ context.Context, grantID, codeHash string) (store.AuthorizationCode, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now := db.now()
	e := s.codeLocked(grantID, codeHash, now)
	switch {
	case e == nil:
		return store.AuthorizationCode{}, store.ErrNotFound
	case e.redeemed:
		return store.AuthorizationCode{}, store.ErrCodeReused
	}
	c := e.code
	c.Resource = slices.Clone(c.Resource)
	return c, nil
}

// codeLocked returns a live code or replay marker, or nil; the caller holds mu.
func (s *Store) codeLocked(grantID, codeHash string, now time.Time) *codeEntry {
	g := s.grantLocked(grantID, now)
	if g == nil {
		return nil
	}
	e := g.codes[codeHash]
	if e == nil || !live(e.code.ExpiresAt, now) {
		return nil
	}
	return e
}

// RedeemCode implements store.Grants.
func (s *Store) RedeemCode(_ context.Context, grantID, codeHash string, gr store.Grant, tokens store.TokenPair) error {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now := db.now()
	s.useLocked(tokens.ClientUse, now)
	e := s.codeLocked(grantID, codeHash, now)
	switch {
	case e == nil:
		return s.missingLocked(grantID, now)
	case e.redeemed:
		s.revokeLocked(grantID, now)
		return store.ErrCodeReused
	}
	e.redeemed = true
	s.storeGrantLocked(grantID, gr, tokens, now)
	return nil
}

// IssueGrant implements store.Grants.
func (s *Store) IssueGrant(_ context.Context, gr store.Grant, tokens store.TokenPair) error {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now := db.now()
	s.useLocked(tokens.ClientUse, now)
	if g := s.grantLocked(gr.ID, now); g != nil {
		if g.revoked {
			return store.ErrGrantRevoked
		}
		return store.ErrAlreadyExists
	}
	s.storeGrantLocked(gr.ID, gr, tokens, now)
	return nil
}

// storeGrantLocked writes a grant with its first tokens and indexes it; the caller
// holds mu.
func (s *Store) storeGrantLocked(grantID string, gr store.Grant, tokens store.TokenPair, now time.Time) {
	db := s.db
	gr.Resource = slices.Clone(gr.Resource)
	g := s.grantForWriteLocked(grantID, now, gr.ExpiresAt)
	g.grant = &gr
	s.putTokensLocked(g, tokens)
	for _, k := range s.indexKeys(gr.UserID, gr.ClientID) {
		set := db.index[k]
		if set == nil {
			set = map[string]struct{}{}
			db.index[k] = set
		}
		set[grantID] = struct{}{}
	}
}

// indexKeys are the index entries a grant of user and client is listed under: the
// user's, the client's and the tenant's. NUL cannot occur in an ID from a request or
// an upstream identity, so the three kinds never collide.
func (s *Store) indexKeys(userID, clientID string) []string {
	keys := []string{s.key("client\x00" + clientID), s.key("tenant")}
	if userID != "" {
		keys = append(keys, s.key("user\x00"+userID))
	}
	return keys
}

// ListGrants implements store.GrantIndex.
func (s *Store) ListGrants(_ context.Context, f store.GrantFilter) ([]store.Grant, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now := db.now()
	k := s.key("tenant")
	switch {
	case f.UserID != "":
		k = s.key("user\x00" + f.UserID)
	case f.ClientID != "":
		k = s.key("client\x00" + f.ClientID)
	}
	var out []store.Grant
	for id := range db.index[k] {
		g := s.grantLocked(id, now)
		if g == nil || g.grant == nil || !live(g.grant.ExpiresAt, now) {
			// Everything happens under mu here, so a grant that is not live now is
			// gone for good: its code was redeemed, and it expired or was revoked.
			delete(db.index[k], id)
			continue
		}
		if f.ClientID != "" && g.grant.ClientID != f.ClientID {
			continue
		}
		gr := *g.grant
		gr.Resource = slices.Clone(gr.Resource)
		out = append(out, gr)
	}
	if len(db.index[k]) == 0 {
		delete(db.index, k)
	}
	store.SortGrants(out)
	return out, nil
}

// missingLocked is the error for a code or refresh token that is not there:
// ErrGrantRevoked if its grant was revoked, else ErrNotFound.
func (s *Store) missingLocked(grantID string, now time.Time) error {
	if g := s.grantLocked(grantID, now); g != nil && g.revoked {
		return store.ErrGrantRevoked
	}
	return store.ErrNotFound
}

// putTokensLocked stores a pair in g and extends its horizon; the caller holds mu.
func (s *Store) putTokensLocked(g *grantState, p store.TokenPair) {
	extend := func(exp time.Time) {
		if exp.After(g.horizon) {
			g.horizon = exp
		}
	}
	g.access[p.AccessHash] = cloneToken(p.Access)
	extend(p.Access.ExpiresAt)
	if p.RefreshHash != "" {
		g.refresh[p.RefreshHash] = &refreshEntry{token: cloneToken(p.Refresh)}
		extend(p.Refresh.ExpiresAt)
	}
}

// GetAccessToken implements store.Grants.
func (s *Store) GetAccessToken(_ context.Context, grantID, tokenHash string) (store.Token, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now := db.now()
	g := s.grantLocked(grantID, now)
	if g == nil {
		return store.Token{}, store.ErrNotFound
	}
	t, ok := g.access[tokenHash]
	if !ok || !live(t.ExpiresAt, now) {
		return store.Token{}, store.ErrNotFound
	}
	return cloneToken(t), nil
}

// refreshLocked returns a live refresh token or replay marker, or nil; the caller
// holds mu.
func (s *Store) refreshLocked(grantID, tokenHash string, now time.Time) *refreshEntry {
	g := s.grantLocked(grantID, now)
	if g == nil {
		return nil
	}
	e := g.refresh[tokenHash]
	if e == nil || !live(e.token.ExpiresAt, now) {
		return nil
	}
	return e
}

// GetRefreshToken implements store.Grants.
func (s *Store) GetRefreshToken(_ context.Context, grantID, tokenHash string) (store.Token, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	e := s.refreshLocked(grantID, tokenHash, db.now())
	switch {
	case e == nil:
		return store.Token{}, store.ErrNotFound
	case e.rotated:
		return store.Token{}, store.ErrRefreshReused
	}
	return cloneToken(e.token), nil
}

// RotateRefreshToken implements store.Grants.
func (s *Store) RotateRefreshToken(_ context.Context, grantID, oldHash string, next store.TokenPair, succ store.Successor) ([]byte, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	s.useLocked(next.ClientUse, db.now())
	now := db.now()
	e := s.refreshLocked(grantID, oldHash, now)
	switch {
	case e == nil:
		return nil, s.missingLocked(grantID, now)
	case e.rotated:
		// Revocation clears every kept successor, so one still here belongs to a
		// live grant.
		if k := e.succ; k != nil && live(k.Until, now) && k.ClientID != "" && k.ClientID == succ.ClientID {
			return slices.Clone(k.Sealed), nil
		}
		s.revokeLocked(grantID, now)
		return nil, store.ErrRefreshReused
	case next.AccessHash == "":
		return nil, errors.New("memory store: rotation of a current refresh token without a new pair")
	}
	e.rotated = true
	if live(succ.Until, now) && len(succ.Sealed) > 0 {
		succ.Sealed = slices.Clone(succ.Sealed)
		e.succ = &succ
	}
	s.putTokensLocked(s.grantLocked(grantID, now), next)
	return nil, nil
}

// GetGrant implements store.Grants.
func (s *Store) GetGrant(_ context.Context, grantID string) (store.Grant, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now := db.now()
	g := s.grantLocked(grantID, now)
	if g == nil || g.grant == nil || !live(g.grant.ExpiresAt, now) {
		return store.Grant{}, store.ErrNotFound
	}
	gr := *g.grant
	gr.Resource = slices.Clone(gr.Resource)
	return gr, nil
}

// RevokeGrant implements store.Grants.
func (s *Store) RevokeGrant(_ context.Context, grantID string) error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	s.revokeLocked(grantID, s.db.now())
	return nil
}

// revokeLocked drops the grant's live records, keeps its replay markers and marks it
// revoked; the caller holds mu.
func (s *Store) revokeLocked(grantID string, now time.Time) {
	g := s.grantLocked(grantID, now)
	if g == nil {
		return
	}
	s.recordLocked(feedMember{grantID: grantID}, now)
	g.revoked = true
	g.grant = nil
	clear(g.access)
	for h, e := range g.codes {
		if !e.redeemed {
			delete(g.codes, h)
		}
	}
	for h, e := range g.refresh {
		if !e.rotated {
			delete(g.refresh, h)
		}
		e.succ = nil
	}
}

// RevokeAccessToken implements store.Grants.
func (s *Store) RevokeAccessToken(_ context.Context, grantID, tokenHash string) error {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	if g := s.grantLocked(grantID, db.now()); g != nil {
		delete(g.access, tokenHash)
	}
	return nil
}

// PutUpstreamToken implements store.UpstreamTokens.
func (s *Store) PutUpstreamToken(_ context.Context, userID string, t store.UpstreamToken, ttl time.Duration) error {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	t.Ciphertext = slices.Clone(t.Ciphertext)
	db.upstream[s.key(userID)] = upstreamEntry{token: t, expiresAt: db.now().Add(ttl)}
	return nil
}

// GetUpstreamToken implements store.UpstreamTokens.
func (s *Store) GetUpstreamToken(_ context.Context, userID string) (store.UpstreamToken, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	e, ok := db.upstream[s.key(userID)]
	if !ok || !live(e.expiresAt, db.now()) {
		return store.UpstreamToken{}, store.ErrNotFound
	}
	t := e.token
	t.Ciphertext = slices.Clone(t.Ciphertext)
	return t, nil
}

// DeleteUpstreamToken implements store.UpstreamTokens.
func (s *Store) DeleteUpstreamToken(_ context.Context, userID string) error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	delete(s.db.upstream, s.key(userID))
	return nil
}

// AcquireLease implements store.Leases.
func (s *Store) AcquireLease(_ context.Context, name string, ttl time.Duration) (bool, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	if ttl <= 0 {
		return false, nil
	}
	now, k := db.now(), s.key(name)
	if l, ok := db.leases[k]; ok && live(l.expiresAt, now) {
		return false, nil
	}
	db.leases[k] = leaseEntry{holder: s.holder, expiresAt: now.Add(ttl)}
	return true, nil
}

// ReleaseLease implements store.Leases.
func (s *Store) ReleaseLease(_ context.Context, name string) error {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	k := s.key(name)
	if l, ok := db.leases[k]; ok && l.holder == s.holder {
		delete(db.leases, k)
	}
	return nil
}

// feedMember names what a feed entry revokes.
type feedMember struct{ grantID, jti string }

// recordLocked adds a feed entry at now; the caller holds mu.
func (s *Store) recordLocked(m feedMember, now time.Time) {
	feed := s.db.feeds[s.prefix]
	if feed == nil {
		feed = map[feedMember]time.Time{}
		s.db.feeds[s.prefix] = feed
	}
	feed[m] = now
}

// Revocations implements store.RevocationFeed.
func (s *Store) Revocations(_ context.Context, since time.Time) ([]store.Revocation, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	oldest := db.now().Add(-db.retention)
	var out []store.Revocation
	for m, at := range db.feeds[s.prefix] {
		if at.Before(since) || !at.After(oldest) {
			continue
		}
		out = append(out, store.Revocation{GrantID: m.grantID, TokenID: m.jti, At: at})
	}
	slices.SortFunc(out, func(a, b store.Revocation) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.GrantID, b.GrantID), cmp.Compare(a.TokenID, b.TokenID))
	})
	return out, nil
}

// RevokeTokenID implements store.RevocationFeed.
func (s *Store) RevokeTokenID(_ context.Context, grantID, jti string, until time.Time) error {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now := db.now()
	if !live(until, now) {
		return nil
	}
	db.jtis[s.key(grantID+"\x00"+jti)] = until
	s.recordLocked(feedMember{grantID: grantID, jti: jti}, now)
	return nil
}

// TokenIDRevoked implements store.RevocationFeed.
func (s *Store) TokenIDRevoked(_ context.Context, grantID, jti string) (bool, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	until, ok := db.jtis[s.key(grantID+"\x00"+jti)]
	return ok && live(until, db.now()), nil
}

// janitor sweeps every interval until Close.
func (db *database) janitor(interval time.Duration) {
	defer close(db.stopped)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-tick.C:
			db.sweep()
		}
	}
}

// sweep deletes every expired record of every tenant. Reads already ignore expired
// records; this only gives their memory back.
func (db *database) sweep() {
	db.mu.Lock()
	defer db.mu.Unlock()
	now := db.now()
	for k, c := range db.clients {
		if !live(c.ExpiresAt, now) {
			delete(db.clients, k)
		}
	}
	for k, a := range db.approvals {
		if !live(a.ExpiresAt, now) {
			delete(db.approvals, k)
		}
	}
	for k, p := range db.pending {
		if !live(p.ExpiresAt, now) {
			delete(db.pending, k)
		}
	}
	for k, e := range db.upstream {
		if !live(e.expiresAt, now) {
			delete(db.upstream, k)
		}
	}
	for k, set := range db.index {
		tenant, _, _ := strings.Cut(k, "\x00")
		for id := range set {
			g := db.grants[tenant+"\x00"+id]
			if g == nil || g.grant == nil || !live(g.grant.ExpiresAt, now) {
				delete(set, id)
			}
		}
		if len(set) == 0 {
			delete(db.index, k)
		}
	}
	for k, l := range db.leases {
		if !live(l.expiresAt, now) {
			delete(db.leases, k)
		}
	}
	for k, until := range db.jtis {
		if !live(until, now) {
			delete(db.jtis, k)
		}
	}
	oldest := now.Add(-db.retention)
	for _, feed := range db.feeds {
		for m, at := range feed {
			if !at.After(oldest) {
				delete(feed, m)
			}
		}
	}
	for k, d := range db.devices {
		if !live(d.d.ExpiresAt, now) {
			delete(db.devices, k)
		}
	}
	for k, u := range db.userCodes {
		if !live(u.expiresAt, now) {
			delete(db.userCodes, k)
		}
	}
	for k, g := range db.grants {
		if !live(g.horizon, now) {
			delete(db.grants, k)
			continue
		}
		for h, e := range g.codes {
			if !live(e.code.ExpiresAt, now) {
				delete(g.codes, h)
			}
		}
		for h, t := range g.access {
			if !live(t.ExpiresAt, now) {
				delete(g.access, h)
			}
		}
		for h, e := range g.refresh {
			if !live(e.token.ExpiresAt, now) {
				delete(g.refresh, h)
			} else if e.succ != nil && !live(e.succ.Until, now) {
				e.succ = nil
			}
		}
	}
}

// The records hold slices; the store copies them on the way in and out so that a
// caller changing a slice it passed or got back cannot change what is stored, as
// with Redis.

func cloneClient(c store.Client) store.Client {
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.GrantTypes = slices.Clone(c.GrantTypes)
	c.ResponseTypes = slices.Clone(c.ResponseTypes)
	return c
}

func cloneApproval(a store.ClientApproval) store.ClientApproval {
	a.RedirectURIs = slices.Clone(a.RedirectURIs)
	return a
}

func cloneToken(t store.Token) store.Token {
	t.Resource = slices.Clone(t.Resource)
	return t
}
