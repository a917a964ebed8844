package cimd

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// docServer is an https server on loopback whose paths serve test documents and
// count their hits.
type docServer struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	handlers map[string]http.HandlerFunc
	hits     map[string]int
}

func newDocServer(t *testing.T) *docServer {
	s := &docServer{t: t, handlers: map[string]http.HandlerFunc{}, hits: map[string]int{}}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		h := s.handlers[r.URL.Path]
		s.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *docServer) url(path string) string { return s.srv.URL + path }

func (s *docServer) tlsConfig() *tls.Config {
	return s.srv.Client().Transport.(*http.Transport).TLSClientConfig
}

// fetcher returns a Fetcher that trusts the server and may reach loopback.
func (s *docServer) fetcher(opts Options) *Fetcher {
	opts.AllowPrivateAddresses = true
	opts.TLSClientConfig = s.tlsConfig()
	return New(opts)
}

func (s *docServer) handle(path string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[path] = h
}

// serveDoc serves a valid document for the path's URL, with extra headers.
func (s *docServer) serveDoc(path string, header http.Header) {
	body := mustJSON(s.t, validDoc(s.url(path)))
	s.handle(path, func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}

func (s *docServer) hitsOf(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func (s *docServer) totalHits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, h := range s.hits {
		n += h
	}
	return n
}

func validDoc(clientID string) map[string]any {
	return map[string]any{
		"client_id":     clientID,
		"client_name":   "Example MCP Client",
		"redirect_uris": []string{"http://127.0.0.1:33418/callback", "https://app.example.com/callback"},
		"grant_types":   []string{"authorization_code", "refresh_token"},
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFetchValidDocument(t *testing.T) {
	s := newDocServer(t)
	id := s.url("/client.json")
	doc := validDoc(id)
	doc["logo_uri"] = "https://app.example.com/logo.png"
	doc["application_type"] = "native"
	doc["unknown_member"] = []int{1, 2} // extension members are ignored
	body := mustJSON(t, doc)
	var gotAccept, gotUA string
	s.handle("/client.json", func(w http.ResponseWriter, r *http.Request) {
		gotAccept, gotUA = r.Header.Get("Accept"), r.Header.Get("User-Agent")
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(body)
	})

	got, err := s.fetcher(Options{}).Fetch(context.Background(), id)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	want := &Document{
		ClientID: id, ClientName: "Example MCP Client",
		RedirectURIs:            []string{"http://127.0.0.1:33418/callback", "https://app.example.com/callback"},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		TokenEndpointAuthMethod: "none", LogoURI: "https://app.example.com/logo.png", ApplicationType: "native",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Fetch =\n%+v\nwant\n%+v", got, want)
	}
	if gotAccept != "application/json" || gotUA != DefaultUserAgent {
		t.Errorf("request headers Accept=%q User-Agent=%q", gotAccept, gotUA)
	}
	if got.LoopbackOnly() {
		t.Errorf("LoopbackOnly with an https redirect URI")
	}
}

func TestFetchRejections(t *testing.T) {
	type response struct {
		status      int
		contentType string
		body        func(id string) []byte
	}
	doc := func(edit func(d map[string]any)) func(string) []byte {
		return func(id string) []byte {
			d := validDoc(id)
			edit(d)
			b, _ := json.Marshal(d)
			return b
		}
	}
	raw := func(s string) func(string) []byte { return func(string) []byte { return []byte(s) } }
	ok := func(body func(string) []byte) response { return response{200, "application/json", body} }

	tests := []struct {
		name   string
		resp   response
		kind   error
		reason string // substring of Error.Reason
	}{
		// transport and HTTP
		{"not found", response{404, "application/json", raw("{}")}, ErrFetch, "HTTP status 404 (want 200)"},
		{"server error", response{500, "application/json", raw("{}")}, ErrFetch, "HTTP status 500"},
		{"no content", response{204, "application/json", raw("")}, ErrFetch, "HTTP status 204"},
		{"HTML", response{200, "text/html", doc(func(map[string]any) {})}, ErrFetch, `content type "text/html" is not JSON`},
		{"text/plain JSON", response{200, "text/plain", doc(func(map[string]any) {})}, ErrFetch, "is not JSON"},
		{"malformed content type", response{200, "application/json; =", doc(func(map[string]any) {})}, ErrFetch, "is not JSON"},
		{"too large", ok(doc(func(d map[string]any) { d["client_name"] = strings.Repeat("x", 6000) })), ErrTooLarge, "larger than 5120 bytes"},

		// JSON
		{"not JSON", ok(raw("client_id=x")), ErrInvalidDocument, "not a JSON object"},
		{"a JSON array", ok(raw(`[{"client_id":"x"}]`)), ErrInvalidDocument, "not a JSON object"},
		{"JSON null", ok(raw(`null`)), ErrInvalidDocument, "not a JSON object"},
		{"trailing garbage", ok(raw(`{"client_id":"x"} {}`)), ErrInvalidDocument, "not a JSON object"},

		// client_id
		{"client_id missing", ok(doc(func(d map[string]any) { delete(d, "client_id") })), ErrInvalidDocument, "client_id: required"},
		{"client_id of another client", ok(doc(func(d map[string]any) { d["client_id"] = "https://evil.example/client" })),
			ErrInvalidDocument, `client_id: "https://evil.example/client" does not match the URL`},
		{"client_id differs by a trailing slash", ok(func(id string) []byte {
			d := validDoc(id + "/")
			b, _ := json.Marshal(d)
			return b
		}), ErrInvalidDocument, "does not match the URL"},
		{"client_id in another case", ok(doc(func(d map[string]any) { d["Client_ID"] = d["client_id"]; delete(d, "client_id") })),
			ErrInvalidDocument, "client_id: required"},
		{"client_id not a string", ok(doc(func(d map[string]any) { d["client_id"] = 7 })), ErrInvalidDocument, "client_id: must be a string"},

		// client_name
		{"client_name missing", ok(doc(func(d map[string]any) { delete(d, "client_name") })), ErrInvalidDocument, "client_name: required"},
		{"client_name blank", ok(doc(func(d map[string]any) { d["client_name"] = "  " })), ErrInvalidDocument, "client_name: required"},
		{"client_name with control characters", ok(doc(func(d map[string]any) { d["client_name"] = "a\u202eb\n" })), ErrInvalidDocument, "client_name: must not contain control characters"},

		// redirect_uris
		{"redirect_uris missing", ok(doc(func(d map[string]any) { delete(d, "redirect_uris") })), ErrInvalidDocument, "redirect_uris: at least one is required"},
		{"redirect_uris empty", ok(doc(func(d map[string]any) { d["redirect_uris"] = []string{} })), ErrInvalidDocument, "redirect_uris: at least one is required"},
		{"redirect_uris a string", ok(doc(func(d map[string]any) { d["redirect_uris"] = "https://a.example/cb" })), ErrInvalidDocument, "redirect_uris: must be an array of strings"},
		{"redirect URI with fragment", ok(doc(func(d map[string]any) { d["redirect_uris"] = []string{"https://a.example/cb#x"} })), ErrInvalidDocument, "redirect_uris[0]: must not contain a fragment"},
		{"redirect URI http off loopback", ok(doc(func(d map[string]any) { d["redirect_uris"] = []string{"https://a.example/cb", "http://a.example/cb"} })),
			ErrInvalidDocument, "redirect_uris[1]: http is allowed only on a loopback host"},
		{"redirect URI javascript", ok(doc(func(d map[string]any) { d["redirect_uris"] = []string{"javascript:alert(1)"} })), ErrInvalidDocument, `redirect_uris[0]: scheme "javascript" is not allowed`},
		{"redirect URI relative", ok(doc(func(d map[string]any) { d["redirect_uris"] = []string{"/cb"} })), ErrInvalidDocument, "redirect_uris[0]: must be an absolute URL"},

		// credentials
		{"client_secret", ok(doc(func(d map[string]any) { d["client_secret"] = "s" })), ErrInvalidDocument, "client_secret: not allowed in a metadata document"},
		{"client_secret_expires_at", ok(doc(func(d map[string]any) { d["client_secret_expires_at"] = 0 })), ErrInvalidDocument, "client_secret_expires_at: not allowed"},
		{"client_secret_basic", ok(doc(func(d map[string]any) { d["token_endpoint_auth_method"] = "client_secret_basic" })), ErrInvalidDocument, `token_endpoint_auth_method: "client_secret_basic" is not allowed`},
		{"client_secret_post", ok(doc(func(d map[string]any) { d["token_endpoint_auth_method"] = "client_secret_post" })), ErrInvalidDocument, `"client_secret_post" is not allowed`},
		{"client_secret_jwt", ok(doc(func(d map[string]any) { d["token_endpoint_auth_method"] = "client_secret_jwt" })), ErrInvalidDocument, `"client_secret_jwt" is not allowed`},
		{"private_key_jwt without keys", ok(doc(func(d map[string]any) { d["token_endpoint_auth_method"] = "private_key_jwt" })), ErrInvalidDocument, "private_key_jwt needs jwks or jwks_uri"},
		{"private key in jwks", ok(doc(func(d map[string]any) {
			d["token_endpoint_auth_method"] = "private_key_jwt"
			d["jwks"] = map[string]any{"keys": []map[string]string{{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "secret"}}}
		})), ErrInvalidDocument, `jwks: keys[0] holds private or symmetric key material ("d")`},
		{"symmetric key in jwks", ok(doc(func(d map[string]any) {
			d["jwks"] = map[string]any{"keys": []map[string]string{{"kty": "oct", "k": "c2VjcmV0"}}}
		})), ErrInvalidDocument, `("k")`},
		{"jwks not a set", ok(doc(func(d map[string]any) { d["jwks"] = []string{"x"} })), ErrInvalidDocument, "jwks: must be a JWK Set"},
		{"jwks and jwks_uri", ok(doc(func(d map[string]any) {
			d["jwks"] = map[string]any{"keys": []any{}}
			d["jwks_uri"] = "https://app.example.com/jwks"
		})), ErrInvalidDocument, "jwks: must not be given together with jwks_uri"},

		// other members
		{"logo_uri javascript", ok(doc(func(d map[string]any) { d["logo_uri"] = "javascript:alert(1)" })), ErrInvalidDocument, "logo_uri: must be an https URL"},
		{"client_uri http", ok(doc(func(d map[string]any) { d["client_uri"] = "http://app.example.com" })), ErrInvalidDocument, "client_uri: must be an https URL"},
		{"jwks_uri data", ok(doc(func(d map[string]any) { d["jwks_uri"] = "data:application/json,{}" })), ErrInvalidDocument, "jwks_uri: must be an https URL"},
		{"application_type unknown", ok(doc(func(d map[string]any) { d["application_type"] = "desktop" })), ErrInvalidDocument, `application_type: "desktop" is not web or native`},
		{"grant_types not a list", ok(doc(func(d map[string]any) { d["grant_types"] = "authorization_code" })), ErrInvalidDocument, "grant_types: must be an array of strings"},

		// all problems at once
		{"several problems", ok(doc(func(d map[string]any) {
			delete(d, "client_name")
			d["client_secret"] = "s"
		})), ErrInvalidDocument, "client_name: required; client_secret: not allowed"},
	}
	s := newDocServer(t)
	f := s.fetcher(Options{})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := fmt.Sprintf("/case/%d", i)
			id := s.url(path)
			s.handle(path, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", tt.resp.contentType)
				w.Header().Set("Cache-Control", "max-age=3600") // errors must not be cached anyway
				w.WriteHeader(tt.resp.status)
				w.Write(tt.resp.body(id))
			})
			for attempt := 1; attempt <= 2; attempt++ {
				_, err := f.Fetch(context.Background(), id)
				var e *Error
				if !errors.As(err, &e) || !errors.Is(err, tt.kind) || !strings.Contains(e.Reason, tt.reason) {
					t.Fatalf("Fetch = %v; want kind %v with reason containing %q", err, tt.kind, tt.reason)
				}
				if e.ClientID != id || !strings.Contains(e.Description(), tt.reason) {
					t.Fatalf("Error = %+v, Description %q", e, e.Description())
				}
			}
			if n := s.hitsOf(path); n != 2 {
				t.Errorf("server hit %d times for two fetches: errors must not be cached", n)
			}
		})
	}
}

func TestFetchSizeLimit(t *testing.T) {
	s := newDocServer(t)
	f := s.fetcher(Options{})
	// sized returns a valid document padded to exactly n bytes.
	sized := func(id string, n int) []byte {
		d := validDoc(id)
		d["software_version"] = ""
		base := len(mustJSON(t, d))
		d["software_version"] = strings.Repeat("v", n-base)
		b := mustJSON(t, d)
		if len(b) != n {
			t.Fatalf("padded document is %d bytes, want %d", len(b), n)
		}
		return b
	}
	tests := []struct {
		name    string
		size    int
		chunked bool // hide the length, so only the read limit can catch it
		wantErr error
	}{
		{"exactly the limit", DefaultMaxBytes, false, nil},
		{"one byte over, with Content-Length", DefaultMaxBytes + 1, false, ErrTooLarge},
		{"one byte over, chunked", DefaultMaxBytes + 1, true, ErrTooLarge},
		{"far over, chunked", 1 << 20, true, ErrTooLarge},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := fmt.Sprintf("/size/%d", i)
			id := s.url(path)
			body := sized(id, tt.size)
			s.handle(path, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if tt.chunked {
					for len(body) > 0 {
						n := min(1000, len(body))
						w.Write(body[:n])
						w.(http.Flusher).Flush()
						body = body[n:]
					}
					return
				}
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				w.Write(body)
			})
			_, err := f.Fetch(context.Background(), id)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Fetch(%d bytes) = %v, want %v", tt.size, err, tt.wantErr)
			}
		})
	}
}

func TestFetchDoesNotFollowRedirects(t *testing.T) {
	s := newDocServer(t)
	s.serveDoc("/target", nil)
	for _, code := range []int{301, 302, 303, 307, 308} {
		path := fmt.Sprintf("/moved/%d", code)
		s.handle(path, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, s.url("/target"), code)
		})
		_, err := s.fetcher(Options{}).Fetch(context.Background(), s.url(path))
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrFetch) || !strings.Contains(e.Reason, "redirects are not followed") {
			t.Errorf("redirect %d: %v", code, err)
		}
	}
	if n := s.hitsOf("/target"); n != 0 {
		t.Fatalf("a redirect was followed %d times", n)
	}
}

func TestFetchTimesOut(t *testing.T) {
	s := newDocServer(t)
	s.handle("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	f := s.fetcher(Options{Timeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := f.Fetch(context.Background(), s.url("/slow"))
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrFetch) || !strings.Contains(e.Reason, "timed out after 100ms") {
		t.Fatalf("Fetch = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s", d)
	}
}

// clock is a settable time source.
type clock struct{ now atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time                { return time.Unix(0, c.now.Load()).UTC() }
func (c *clock) advance(d time.Duration)       { c.now.Add(int64(d)) }
func (c *clock) header(d time.Duration) string { return c.Now().Add(d).Format(http.TimeFormat) }

func TestFetchCachesPerHeaders(t *testing.T) {
	tests := []struct {
		name     string
		header   func(c *clock) http.Header
		cachedAt []time.Duration // after each advance, is the cache still used?
		stale    time.Duration   // by this advance the document must be fetched again
	}{
		{"max-age", func(*clock) http.Header { return http.Header{"Cache-Control": {"public, max-age=600"}} },
			[]time.Duration{0, 599 * time.Second}, 600 * time.Second},
		{"s-maxage wins over max-age", func(*clock) http.Header { return http.Header{"Cache-Control": {"max-age=60, s-maxage=300"}} },
			[]time.Duration{299 * time.Second}, 300 * time.Second},
		{"Age counts against max-age", func(*clock) http.Header { return http.Header{"Cache-Control": {"max-age=600"}, "Age": {"500"}} },
			[]time.Duration{99 * time.Second}, 100 * time.Second},
		{"Expires against Date", func(c *clock) http.Header {
			// The origin's clock runs an hour behind ours; only the difference counts.
			return http.Header{"Expires": {c.header(-time.Hour + 10*time.Minute)}, "Date": {c.header(-time.Hour)}}
		}, []time.Duration{9 * time.Minute}, 10 * time.Minute},
		{"no headers: default lifetime", func(*clock) http.Header { return nil }, []time.Duration{DefaultTTL - time.Second}, DefaultTTL},
		{"short lifetimes raised to MinTTL", func(*clock) http.Header { return http.Header{"Cache-Control": {"max-age=1"}} },
			[]time.Duration{DefaultMinTTL - time.Second}, DefaultMinTTL},
		{"long lifetimes capped at MaxTTL", func(*clock) http.Header { return http.Header{"Cache-Control": {"max-age=31536000"}} },
			[]time.Duration{DefaultMaxTTL - time.Second}, DefaultMaxTTL},
		{"no-store", func(*clock) http.Header { return http.Header{"Cache-Control": {"no-store"}} }, nil, 0},
		{"no-cache", func(*clock) http.Header { return http.Header{"Cache-Control": {"max-age=600, no-cache"}} }, nil, 0},
		{"max-age=0", func(*clock) http.Header { return http.Header{"Cache-Control": {"max-age=0"}} }, nil, 0},
		{"Expires in the past", func(c *clock) http.Header { return http.Header{"Expires": {c.header(-time.Minute)}} }, nil, 0},
		{"invalid Expires", func(*clock) http.Header { return http.Header{"Expires": {"0"}} }, nil, 0},
		{"invalid max-age", func(*clock) http.Header { return http.Header{"Cache-Control": {"max-age=soon"}} }, nil, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newDocServer(t)
			c := newClock()
			f := s.fetcher(Options{Now: c.Now})
			path := fmt.Sprintf("/cache/%d", i)
			s.serveDoc(path, tt.header(c))
			fetch := func() {
				t.Helper()
				if _, err := f.Fetch(context.Background(), s.url(path)); err != nil {
					t.Fatalf("Fetch: %v", err)
				}
			}
			fetch()
			var elapsed time.Duration
			for _, at := range tt.cachedAt {
				c.advance(at - elapsed)
				elapsed = at
				fetch()
				if n := s.hitsOf(path); n != 1 {
					t.Fatalf("%s after the fetch: %d hits, want the cached document", at, n)
				}
			}
			c.advance(tt.stale - elapsed)
			fetch()
			if n := s.hitsOf(path); n != 2 {
				t.Fatalf("%s after the fetch: %d hits, want a second fetch", tt.stale, n)
			}
		})
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	s := newDocServer(t)
	f := s.fetcher(Options{MaxEntries: 2})
	for _, p := range []string{"/a", "/b", "/c"} {
		s.serveDoc(p, http.Header{"Cache-Control": {"max-age=3600"}})
	}
	fetch := func(p string) {
		t.Helper()
		if _, err := f.Fetch(context.Background(), s.url(p)); err != nil {
			t.Fatal(err)
		}
	}
	fetch("/a")
	fetch("/b")
	fetch("/a") // a is now more recent than b
	fetch("/c") // evicts b
	fetch("/a")
	fetch("/b")
	if a, b, c := s.hitsOf("/a"), s.hitsOf("/b"), s.hitsOf("/c"); a != 1 || b != 2 || c != 1 {
		t.Fatalf("hits a=%d b=%d c=%d; want a=1 b=2 c=1", a, b, c)
	}
	f.mu.Lock()
	n := f.cache.len()
	f.mu.Unlock()
	if n != 2 {
		t.Fatalf("cache holds %d entries, want 2", n)
	}
}

func TestInvalidateForcesRefetch(t *testing.T) {
	s := newDocServer(t)
	f := s.fetcher(Options{})
	s.serveDoc("/c", http.Header{"Cache-Control": {"max-age=3600"}})
	for range 2 {
		if _, err := f.Fetch(context.Background(), s.url("/c")); err != nil {
			t.Fatal(err)
		}
	}
	f.Invalidate(s.url("/c"))
	if _, err := f.Fetch(context.Background(), s.url("/c")); err != nil {
		t.Fatal(err)
	}
	if n := s.hitsOf("/c"); n != 2 {
		t.Fatalf("hits = %d, want 2", n)
	}
}

func TestFetchReturnsCallersOwnCopy(t *testing.T) {
	s := newDocServer(t)
	f := s.fetcher(Options{})
	s.serveDoc("/c", nil)
	a, err := f.Fetch(context.Background(), s.url("/c"))
	if err != nil {
		t.Fatal(err)
	}
	a.RedirectURIs[0] = "https://evil.example/cb"
	b, err := f.Fetch(context.Background(), s.url("/c"))
	if err != nil {
		t.Fatal(err)
	}
	if b.RedirectURIs[0] != "http://127.0.0.1:33418/callback" {
		t.Fatalf("a caller's edit reached the cache: %v", b.RedirectURIs)
	}
}

// gate returns a channel that handlers block on and the function that opens it. The
// gate also opens when the test ends, before the server closes, so a failing test
// cannot hang on a handler still waiting.
func gate(t *testing.T) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(ch) }) }
	t.Cleanup(open)
	return ch, open
}

// waitWaiters waits until n Fetch calls share the in-flight fetch of id.
func waitWaiters(t *testing.T, f *Fetcher, id string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		c := f.inflight[id]
		got := 0
		if c != nil {
			got = c.waiters
		}
		f.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers share the fetch, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConcurrentFetchesShareOneRequest(t *testing.T) {
	s := newDocServer(t)
	f := s.fetcher(Options{})
	id := s.url("/shared")
	body := mustJSON(t, validDoc(id))
	release, unblock := gate(t)
	s.handle("/shared", func(w http.ResponseWriter, _ *http.Request) {
		<-release
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store") // sharing must not depend on the cache
		w.Write(body)
	})

	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			doc, err := f.Fetch(context.Background(), id)
			if err == nil && doc.ClientID != id {
				err = fmt.Errorf("got document for %s", doc.ClientID)
			}
			errs <- err
		})
	}
	// One more caller gives up before the response: it fails alone.
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() { _, err := f.Fetch(ctx, id); cancelled <- err }()

	waitWaiters(t, f, id, n+1)
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) || !errors.Is(err, ErrFetch) {
		t.Fatalf("cancelled caller got %v", err)
	}
	unblock()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a waiting caller failed: %v", err)
		}
	}
	if hits := s.hitsOf("/shared"); hits != 1 {
		t.Fatalf("%d concurrent fetches made %d requests, want 1", n+1, hits)
	}
}

func TestFetchWithEndedContextDoesNotFetch(t *testing.T) {
	s := newDocServer(t)
	s.serveDoc("/c", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.fetcher(Options{}).Fetch(ctx, s.url("/c")); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrFetch) {
		t.Fatalf("Fetch = %v, want context.Canceled", err)
	}
	if n := s.totalHits(); n != 0 {
		t.Fatalf("%d requests for a caller that had gone", n)
	}
}

func TestFetchBoundsConcurrentDistinctFetches(t *testing.T) {
	s := newDocServer(t)
	f := s.fetcher(Options{MaxConcurrent: 1})
	release, unblock := gate(t)
	id := s.url("/slow")
	body := mustJSON(t, validDoc(id))
	s.handle("/slow", func(w http.ResponseWriter, _ *http.Request) {
		<-release
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	s.serveDoc("/other", nil)
	done := make(chan error, 1)
	go func() { _, err := f.Fetch(context.Background(), id); done <- err }()
	waitWaiters(t, f, id, 1)

	_, err := f.Fetch(context.Background(), s.url("/other"))
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrFetch) || !strings.Contains(e.Reason, "busy") {
		t.Fatalf("second distinct fetch = %v, want busy", err)
	}
	unblock()
	if err := <-done; err != nil {
		t.Fatalf("first fetch: %v", err)
	}
	if _, err := f.Fetch(context.Background(), s.url("/other")); err != nil {
		t.Fatalf("after the first finished: %v", err)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for uris, want := range map[string]bool{
		"http://127.0.0.1:1234/cb":                   true,
		"http://localhost/cb http://[::1]:9/cb":      true,
		"http://127.0.0.1/cb https://app.example/cb": false,
		"com.example.app:/cb":                        false,
		"":                                           false,
	} {
		d := &Document{RedirectURIs: strings.Fields(uris)}
		if got := d.LoopbackOnly(); got != want {
			t.Errorf("LoopbackOnly(%q) = %v, want %v", uris, got, want)
		}
	}
}
