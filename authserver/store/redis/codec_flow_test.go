package redis

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
)

func codecPendings() []store.PendingAuthorization {
	now := time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.UTC)
	return []store.PendingAuthorization{
		{ClientID: "mcpc_abc", RedirectURI: "http://127.0.0.1:33418/callback", State: "st-123", Scope: "mcp read",
			CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", CodeChallengeMethod: "S256",
			Resource: []string{"https://mcp.example/", "https://other.example/x"}, UpstreamVerifier: "v", Nonce: "n",
			BrowserBinding: "b", ExpiresAt: now},
		{ClientID: "c", RedirectURI: "https://app.example/cb", CodeChallenge: "x", CodeChallengeMethod: "S256", ExpiresAt: now.Truncate(time.Second)},
		{ClientID: "https://app.example/client.json", RedirectURI: "https://app.example/cb?a=1&b=2", State: `"quoted" <tag> \ ü`,
			CodeChallenge: "x", CodeChallengeMethod: "S256", ExpiresAt: now.In(time.FixedZone("", -5*3600))},
		{ClientID: "c", State: "line\nbreak\u2028", Resource: []string{}, ExpiresAt: now},
		{ClientID: "c", ExpiresAt: time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)}, // MarshalJSON refuses it
		{},
	}
}

func codecCodes() []store.AuthorizationCode {
	now := time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.UTC)
	return []store.AuthorizationCode{
		{ClientID: "mcpc_abc", RedirectURI: "http://127.0.0.1:33418/callback", Scope: "mcp",
			CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", CodeChallengeMethod: "S256",
			Resource: []string{"https://mcp.example/"}, UserID: "github|12345", AuthTime: now, ExpiresAt: now.Add(5 * time.Minute)},
		{ClientID: "c", RedirectURI: "https://app.example/cb?a=1&b=2", UserID: "<u>", AuthTime: now, ExpiresAt: now},
		{ClientID: "c", UserID: "u", Resource: []string{}, AuthTime: now.In(time.FixedZone("", 2*3600))},
		{ClientID: "c", AuthTime: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{},
	}
}

// roundTrip checks that the fast encode writes what encoding/json writes and that the
// fast decode reads what encoding/json reads, for v of type T.
func roundTrip[T any](t *testing.T, name string, v T, enc func(*T) (string, error), dec func(string, *T) error) {
	t.Helper()
	want, wantErr := json.Marshal(v)
	got, err := enc(&v)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%s: encode error %v, encoding/json %v", name, err, wantErr)
	}
	if err != nil {
		return
	}
	if got != string(want) {
		t.Errorf("%s: encoded\n%s\nencoding/json:\n%s", name, got, want)
	}
	var fromJSON, fromFast T
	if err := json.Unmarshal(want, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := dec(got, &fromFast); err != nil {
		t.Fatalf("%s: decode: %v", name, err)
	}
	if !reflect.DeepEqual(fromFast, fromJSON) {
		t.Errorf("%s: decoded %+v, encoding/json %+v", name, fromFast, fromJSON)
	}
}

// TestFlowRecordCodecMatchesEncodingJSON: pending authorizations and codes are written
// as encoding/json writes them and read back as it reads them, ordinary and odd alike.
func TestFlowRecordCodecMatchesEncodingJSON(t *testing.T) {
	for i, p := range codecPendings() {
		roundTrip(t, "pending "+string(rune('0'+i)), p, encodePending, decodePending)
	}
	for i, c := range codecCodes() {
		roundTrip(t, "code "+string(rune('0'+i)), c, encodeCode, decodeCode)
	}
}

// TestFlowRecordDecodeFallsBack: records in another form (fields reordered, escapes,
// unknown fields, written by another version) are read by encoding/json; broken ones
// are errors.
func TestFlowRecordDecodeFallsBack(t *testing.T) {
	for _, s := range []string{
		`{"redirect_uri":"https://a/cb","client_id":"c","code_challenge":"x","code_challenge_method":"S256","expires_at":"2026-01-01T00:00:00Z"}`,
		`{"client_id":"c\u0041","redirect_uri":"https://a/cb","code_challenge":"x","code_challenge_method":"S256","expires_at":"2026-01-01T00:00:00Z"}`,
		`{"client_id":"c","redirect_uri":"https://a/cb","code_challenge":"x","code_challenge_method":"S256","expires_at":"2026-01-01T00:00:00Z","new":1}`,
	} {
		var want, got store.PendingAuthorization
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatal(err)
		}
		if err := decodePending(s, &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("decode %s: %+v, %v; want %+v", s, got, err, want)
		}
	}
	for _, s := range []string{
		`{"client_id":"c","redirect_uri":"r","code_challenge":"x","code_challenge_method":"S256","user_id":"u","expires_at":"2026-01-01T00:00:00Z","auth_time":"2026-01-01T00:00:00Z"}`,
		` {"client_id":"c","redirect_uri":"r","code_challenge":"x","code_challenge_method":"S256","user_id":"u","auth_time":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:00:00Z"}`,
	} {
		var want, got store.AuthorizationCode
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatal(err)
		}
		if err := decodeCode(s, &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("decode %s: %+v, %v; want %+v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "{", replayMarker,
		`{"client_id":"c","redirect_uri":"r","code_challenge":"x","code_challenge_method":"S256","expires_at":"soon"}`} {
		var p store.PendingAuthorization
		if decodePending(s, &p) == nil {
			t.Errorf("pending %q: no error", s)
		}
	}
	for _, s := range []string{"", "{", replayMarker,
		`{"client_id":"c","redirect_uri":"r","code_challenge":"x","code_challenge_method":"S256","user_id":"u","auth_time":"now","expires_at":"2026-01-01T00:00:00Z"}`} {
		var c store.AuthorizationCode
		if decodeCode(s, &c) == nil {
			t.Errorf("code %q: no error", s)
		}
	}
}

func FuzzPendingDecode(f *testing.F) {
	for _, p := range codecPendings() {
		if s, err := encodePending(&p); err == nil {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want, got store.PendingAuthorization
		wantErr := json.Unmarshal([]byte(s), &want)
		if err := decodePending(s, &got); err == nil && wantErr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("decode %q: got %+v, encoding/json %+v", s, got, want)
		}
	})
}

func FuzzCodeDecode(f *testing.F) {
	for _, c := range codecCodes() {
		if s, err := encodeCode(&c); err == nil {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want, got store.AuthorizationCode
		wantErr := json.Unmarshal([]byte(s), &want)
		if err := decodeCode(s, &got); err == nil && wantErr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("decode %q: got %+v, encoding/json %+v", s, got, want)
		}
	})
}

// fillValue sets v (settable) to a non-zero value of its kind, with the given seed
// making strings distinct. It fails the test on a kind it does not know, so that a
// new kind of field gets a filler rather than a pass.
func fillValue(t *testing.T, v reflect.Value, seed int) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString("v" + string(rune('a'+seed%26)) + "-x_1.2:/?=")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(seed + 1))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(seed + 1))
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fillValue(t, s.Index(0), seed)
		fillValue(t, s.Index(1), seed+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		fillValue(t, k, seed)
		e := reflect.New(v.Type().Elem()).Elem()
		fillValue(t, e, seed+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fillValue(t, p.Elem(), seed)
		v.Set(p)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 3, 4, 5, 6, 7, 100*(seed+1), time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fillValue(t, v.Field(i), seed+i)
			}
		}
	default:
		t.Fatalf("fillValue: no filler for %s", v.Type())
	}
}

// eachFieldFilled returns base with each exported field of T in turn set (the rest
// as in base), then base with every field set.
func eachFieldFilled[T any](t *testing.T, base T) map[string]T {
	out := map[string]T{}
	typ := reflect.TypeOf(base)
	all := base
	for i := 0; i < typ.NumField(); i++ {
		if !typ.Field(i).IsExported() {
			continue
		}
		one := base
		fillValue(t, reflect.ValueOf(&one).Elem().Field(i), i)
		out[typ.Field(i).Name] = one
		fillValue(t, reflect.ValueOf(&all).Elem().Field(i), i)
	}
	out["every field"] = all
	return out
}

// TestFlowRecordCodecCoversEveryField: each field of the two records, set alone (on an
// otherwise ordinary record) and all together, is written as encoding/json writes it
// and read back as it reads it. A field the fast path does not know fails here.
func TestFlowRecordCodecCoversEveryField(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, base := range []store.PendingAuthorization{{}, {ClientID: "c", RedirectURI: "https://a/cb",
		CodeChallenge: "x", CodeChallengeMethod: "S256", ExpiresAt: now}} {
		for name, p := range eachFieldFilled(t, base) {
			roundTrip(t, "pending "+name, p, encodePending, decodePending)
			// With the encoder bypassed: what encoding/json writes, the fast decode reads alike.
			b, _ := json.Marshal(p)
			var want, got store.PendingAuthorization
			_ = json.Unmarshal(b, &want)
			if err := decodePending(string(b), &got); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("pending %s: decode %s: %+v, %v; want %+v", name, b, got, err, want)
			}
		}
	}
	for _, base := range []store.AuthorizationCode{{}, {ClientID: "c", RedirectURI: "https://a/cb",
		CodeChallenge: "x", CodeChallengeMethod: "S256", UserID: "u", AuthTime: now, ExpiresAt: now}} {
		for name, c := range eachFieldFilled(t, base) {
			roundTrip(t, "code "+name, c, encodeCode, decodeCode)
			b, _ := json.Marshal(c)
			var want, got store.AuthorizationCode
			_ = json.Unmarshal(b, &want)
			if err := decodeCode(string(b), &got); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("code %s: decode %s: %+v, %v; want %+v", name, b, got, err, want)
			}
		}
	}
}

// TestTokenCodecCoversEveryField: as TestFlowRecordCodecCoversEveryField, for tokens
// (codec_fast.go).
func TestTokenCodecCoversEveryField(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, base := range []store.Token{{}, {GrantID: "g", ClientID: "c", UserID: "u", IssuedAt: now, ExpiresAt: now}} {
		for name, tok := range eachFieldFilled(t, base) {
			roundTrip(t, "token "+name, tok, encodeToken, decodeToken)
			b, _ := json.Marshal(tok)
			var want, got store.Token
			_ = json.Unmarshal(b, &want)
			if err := decodeToken(string(b), &got); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("token %s: decode %s: %+v, %v; want %+v", name, b, got, err, want)
			}
		}
	}
}
