package redis

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
)

func codecTokens() []store.Token {
	now := time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.UTC)
	return []store.Token{
		{GrantID: "0123456789abcdef0123456789abcdef", ClientID: "mcpc_abc", UserID: "u1", Scope: "mcp read",
			Resource: []string{"https://mcp.example/", "https://other.example/x"}, IssuedAt: now, ExpiresAt: now.Add(time.Hour)},
		{GrantID: "g", ClientID: "c", UserID: "u", IssuedAt: now.Truncate(time.Second), ExpiresAt: now.Add(time.Minute)},
		{GrantID: "g", ClientID: "https://app.example/client.json?a=1&b=2", UserID: "ü <script>", Scope: `say "hi"\`,
			Resource: []string{"https://mcp.example/?x=<y>"}, IssuedAt: now, ExpiresAt: now},
		{GrantID: "g", ClientID: "c", UserID: "line\nbreak\u2028", IssuedAt: now.In(time.FixedZone("", 2*3600)), ExpiresAt: now},
		{GrantID: "g", Resource: []string{}},                                    // zero times, an empty (not nil) slice
		{GrantID: "g", ExpiresAt: time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)}, // MarshalJSON refuses it
		{},
	}
}

// TestTokenCodecMatchesEncodingJSON: the fast path writes what encoding/json writes
// and reads back what encoding/json reads, for ordinary and odd tokens alike.
func TestTokenCodecMatchesEncodingJSON(t *testing.T) {
	for i, tok := range codecTokens() {
		want, wantErr := json.Marshal(tok)
		got, err := encodeToken(&tok)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("token %d: encode error %v, encoding/json %v", i, err, wantErr)
		}
		if err != nil {
			continue
		}
		if got != string(want) {
			t.Errorf("token %d: encoded\n%s\nencoding/json:\n%s", i, got, want)
		}
		var fromJSON, fromFast store.Token
		if err := json.Unmarshal(want, &fromJSON); err != nil {
			t.Fatal(err)
		}
		if err := decodeToken(got, &fromFast); err != nil {
			t.Fatalf("token %d: decode: %v", i, err)
		}
		if !reflect.DeepEqual(fromFast, fromJSON) {
			t.Errorf("token %d: decoded %+v, encoding/json %+v", i, fromFast, fromJSON)
		}
	}
}

// TestTokenDecodeFallsBack: records the fast path does not expect are still read, by
// encoding/json, and broken ones are still errors.
func TestTokenDecodeFallsBack(t *testing.T) {
	for _, s := range []string{
		`{"client_id":"c","grant_id":"g","user_id":"u","issued_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:15:00Z"}`,
		`{"grant_id":"g\u0041","client_id":"c","user_id":"u","issued_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:15:00Z"}`,
		`{"grant_id":"g","client_id":"c","user_id":"u","issued_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:15:00Z","new_field":1}`,
		` {"grant_id":"g","client_id":"c","user_id":"u","issued_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:15:00Z"}`,
	} {
		var want, got store.Token
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatal(err)
		}
		if err := decodeToken(s, &got); err != nil {
			t.Errorf("decode %s: %v", s, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decode %s: got %+v, want %+v", s, got, want)
		}
	}
	for _, s := range []string{"", "{", `{"grant_id":"g","client_id":"c","user_id":"u","issued_at":"yesterday","expires_at":"2026-01-01T00:15:00Z"}`, replayMarker} {
		var got store.Token
		if err := decodeToken(s, &got); err == nil {
			t.Errorf("decode %q: no error", s)
		}
	}
}

func FuzzTokenDecode(f *testing.F) {
	for _, tok := range codecTokens() {
		if s, err := encodeToken(&tok); err == nil {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want, got store.Token
		wantErr := json.Unmarshal([]byte(s), &want)
		if err := decodeToken(s, &got); err == nil && wantErr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("decode %q: got %+v, encoding/json %+v", s, got, want)
		}
	})
}

// TestClientMemo: a remembered client is decoded as encoding/json decodes it, and a
// caller changing its copy changes nobody else's.
func TestClientMemo(t *testing.T) {
	c := store.Client{ID: "c1", Name: "Client", RedirectURIs: []string{"https://app.example/cb"},
		GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "none",
		CreatedAt: time.Now().UTC().Round(0), ExpiresAt: time.Now().Add(time.Hour).UTC().Round(0)}
	s, err := encode(c)
	if err != nil {
		t.Fatal(err)
	}
	var first store.Client
	if err := decode(s, &first); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, c) {
		t.Fatalf("decoded %+v, want %+v", first, c)
	}
	first.RedirectURIs[0] = "https://evil.example/"
	first.GrantTypes[0] = "refresh_token"
	var second store.Client
	if err := decode(s, &second); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(second, c) {
		t.Errorf("after a caller changed its copy, decoded %+v, want %+v", second, c)
	}
	if err := decode("{", &second); err == nil {
		t.Error("a broken client record decoded")
	}
}

// TestClientMemoPrimedAsDecoded: what a write puts in the memo is exactly what
// encoding/json makes of the record, whatever the client's times and slices look like;
// a client that decoding would change is not put in.
func TestClientMemoPrimedAsDecoded(t *testing.T) {
	now := time.Now() // with a monotonic reading, in Local
	base := store.Client{ID: "mcpc_primed", Name: "A <b> & c", RedirectURIs: []string{"http://127.0.0.1/cb"},
		GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "none",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	variant := func(name string, f func(c *store.Client)) store.Client {
		c := base
		c.ID += "-" + name
		f(&c)
		return c
	}
	cases := []store.Client{
		base,
		variant("utc", func(c *store.Client) { c.CreatedAt, c.ExpiresAt = now.UTC(), now.UTC().Add(time.Hour) }),
		variant("fixed-zone", func(c *store.Client) { c.CreatedAt = now.In(time.FixedZone("X", 5*3600+1800)) }),
		variant("zero-times", func(c *store.Client) { c.CreatedAt, c.ExpiresAt = time.Time{}, time.Time{} }),
		variant("nil-slices", func(c *store.Client) { c.RedirectURIs, c.GrantTypes, c.ResponseTypes = nil, nil, nil }),
		variant("empty-slices", func(c *store.Client) {
			c.RedirectURIs, c.GrantTypes, c.ResponseTypes = []string{}, []string{}, []string{}
		}),
		variant("everything", func(c *store.Client) {
			c.SecretHash, c.Scope, c.ApplicationType, c.ClientURI, c.LogoURI = "h", "mcp read", "web", "https://a.example", "https://a.example/l.png"
			c.Trusted, c.RegistrationTokenHash = true, "r"
			c.GrantTypes = []string{"authorization_code", "refresh_token"}
		}),
	}
	for _, c := range cases {
		rec, err := encode(c)
		if err != nil {
			t.Fatal(err)
		}
		rememberClient(rec, c)
		clients.mu.Lock()
		primed, ok := clients.m[rec]
		clients.mu.Unlock()
		if !ok {
			t.Errorf("%s: not in the memo", c.ID)
			continue
		}
		var decoded store.Client
		if err := json.Unmarshal([]byte(rec), &decoded); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(primed, decoded) {
			t.Errorf("%s: primed %#v\nwant (decoded) %#v", c.ID, primed, decoded)
		}
	}

	bad := variant("bad-utf8", func(c *store.Client) { c.Name = "\xff" })
	rec, err := encode(bad)
	if err != nil {
		t.Fatal(err)
	}
	rememberClient(rec, bad)
	clients.mu.Lock()
	_, ok := clients.m[rec]
	clients.mu.Unlock()
	if ok {
		t.Error("a client with a name that is not UTF-8 was put in the memo as it is")
	}
}

// BenchmarkCodec compares the fast paths with encoding/json on typical records.
func BenchmarkCodec(b *testing.B) {
	tok := codecTokens()[0]
	raw, _ := json.Marshal(tok)
	c := store.Client{ID: "mcpc_0123456789abcdefghij", Name: "Example IDE", RedirectURIs: []string{"http://127.0.0.1/callback"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		TokenEndpointAuthMethod: "none", Scope: "mcp", ApplicationType: "native",
		CreatedAt: time.Now().UTC(), ExpiresAt: time.Now().Add(time.Hour).UTC()}
	rawClient, _ := json.Marshal(c)
	b.Run("token encode/encoding-json", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(tok)
		}
	})
	b.Run("token encode/fast", func(b *testing.B) {
		for b.Loop() {
			_, _ = encodeToken(&tok)
		}
	})
	b.Run("token decode/encoding-json", func(b *testing.B) {
		for b.Loop() {
			var t store.Token
			_ = json.Unmarshal(raw, &t)
		}
	})
	b.Run("token decode/fast", func(b *testing.B) {
		s := string(raw)
		for b.Loop() {
			var t store.Token
			_ = decodeToken(s, &t)
		}
	})
	b.Run("client decode/encoding-json", func(b *testing.B) {
		for b.Loop() {
			var v store.Client
			_ = json.Unmarshal(rawClient, &v)
		}
	})
	b.Run("client decode/memo", func(b *testing.B) {
		s := string(rawClient)
		for b.Loop() {
			var v store.Client
			_ = decodeClient(s, &v)
		}
	})
}

// TestClientMemoPrimedEveryField: each field of store.Client, set alone and all
// together (times with a monotonic reading, in Local), is primed exactly as
// encoding/json decodes the record; and a string field that is not UTF-8 is either
// primed as decoded or left out. A field rememberClient does not know fails here.
func TestClientMemoPrimedEveryField(t *testing.T) {
	now := time.Now()
	typ := reflect.TypeOf(store.Client{})
	check := func(name string, c store.Client) {
		t.Helper()
		rec, err := encode(c)
		if err != nil {
			t.Fatal(err)
		}
		clients.mu.Lock()
		delete(clients.m, rec)
		clients.mu.Unlock()
		rememberClient(rec, c)
		clients.mu.Lock()
		primed, ok := clients.m[rec]
		clients.mu.Unlock()
		if !ok {
			return // left out: a read decodes it
		}
		var decoded store.Client
		if err := json.Unmarshal([]byte(rec), &decoded); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(primed, decoded) {
			t.Errorf("%s: primed %#v\nwant (decoded) %#v", name, primed, decoded)
		}
	}
	for name, c := range eachFieldFilled(t, store.Client{}) {
		v := reflect.ValueOf(&c).Elem()
		for i := 0; i < typ.NumField(); i++ {
			if f := v.Field(i); f.Type() == reflect.TypeOf(time.Time{}) && !f.Interface().(time.Time).IsZero() {
				f.Set(reflect.ValueOf(now.Add(time.Duration(i) * time.Second)))
			}
		}
		check(name, c)
		for i := 0; i < typ.NumField(); i++ {
			switch f := v.Field(i); {
			case f.Kind() == reflect.String:
				bad := c
				reflect.ValueOf(&bad).Elem().Field(i).SetString("\xff")
				check(name+" bad "+typ.Field(i).Name, bad)
			case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
				bad := c
				reflect.ValueOf(&bad).Elem().Field(i).Set(reflect.ValueOf([]string{"\xff"}))
				check(name+" bad "+typ.Field(i).Name, bad)
			}
		}
	}
}
