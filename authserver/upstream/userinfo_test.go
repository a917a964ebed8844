package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestIdentityFromClaims(t *testing.T) {
	std := claimMapping{subject: "sub", email: "email", names: []string{"name", "preferred_username"}, groups: "groups"}
	tests := []struct {
		name    string
		json    string
		mapping claimMapping
		want    Identity // Claims not compared
		wantErr string
	}{
		{name: "standard claims", mapping: std,
			json: `{"sub":"u1","email":"a@example.com","email_verified":true,"name":"A","groups":["x","y"]}`,
			want: Identity{Subject: "u1", Email: "a@example.com", Name: "A", Groups: []string{"x", "y"}}},
		{name: "a numeric id is rendered in decimal", mapping: claimMapping{subject: "id"},
			json: `{"id":583231}`, want: Identity{Subject: "583231"}},
		{name: "a numeric id beyond float64 precision keeps every digit", mapping: claimMapping{subject: "id"},
			json: `{"id":12345678901234567891}`, want: Identity{Subject: "12345678901234567891"}},
		{name: "an exponent-form id is rendered without exponent", mapping: claimMapping{subject: "id"},
			json: `{"id":1.2e7}`, want: Identity{Subject: "12000000"}},
		{name: "a dotted path reaches into objects", mapping: claimMapping{subject: "data.id", names: []string{"data.profile.name"}},
			json: `{"data":{"id":"d-7","profile":{"name":"Deep"}}}`, want: Identity{Subject: "d-7", Name: "Deep"}},
		{name: "a literal key with dots wins over the path", mapping: claimMapping{subject: "sub", groups: "https://example.com/groups"},
			json: `{"sub":"u","https://example.com/groups":"admins"}`, want: Identity{Subject: "u", Groups: []string{"admins"}}},
		{name: "an unverified email is left out", mapping: std,
			json: `{"sub":"u","email":"spoof@example.com","email_verified":false}`, want: Identity{Subject: "u"}},
		{name: "a string false counts as unverified", mapping: std,
			json: `{"sub":"u","email":"spoof@example.com","email_verified":"false"}`, want: Identity{Subject: "u"}},
		{name: "an email without a verified flag is kept", mapping: std,
			json: `{"sub":"u","email":"a@example.com"}`, want: Identity{Subject: "u", Email: "a@example.com"}},
		{name: "the name falls back to preferred_username", mapping: std,
			json: `{"sub":"u","name":"","preferred_username":"uu"}`, want: Identity{Subject: "u", Name: "uu"}},
		{name: "an unverified email cannot be the user id", mapping: claimMapping{subject: "email", email: "email"},
			json: `{"sub":"u","email":"ceo@example.com","email_verified":false}`, wantErr: "unverified"},
		{name: "a missing subject fails", mapping: std, json: `{"email":"a@example.com"}`, wantErr: `no "sub" claim`},
		{name: "a null subject fails", mapping: std, json: `{"sub":null}`, wantErr: `no "sub" claim`},
		{name: "an object subject fails", mapping: std, json: `{"sub":{"a":1}}`, wantErr: "not a usable user id"},
		{name: "an empty subject fails", mapping: std, json: `{"sub":""}`, wantErr: "not a usable user id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims, err := decodeClaims([]byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			id, err := identityFrom(claims, tt.mapping)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("identityFrom() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Subject != tt.want.Subject || id.Email != tt.want.Email || id.Name != tt.want.Name ||
				!slices.Equal(id.Groups, tt.want.Groups) {
				t.Errorf("identityFrom() = %+v, want %+v", *id, tt.want)
			}
			if id.Claims == nil {
				t.Error("Claims not kept")
			}
		})
	}
}

func TestDecodeClaimsRefusesErrorObjects(t *testing.T) {
	for _, body := range []string{
		`{"ok":false,"error":"invalid_auth"}`, // Slack, HTTP 200
		`{"ok":false}`,
		`{"error":"invalid_token"}`,
		`["not","an","object"]`,
		`null`,
		`{"sub":"u"} {"sub":"v"}`,
	} {
		if _, err := decodeClaims([]byte(body)); err == nil {
			t.Errorf("decodeClaims(%s) succeeded, want an error", body)
		}
	}
}

func TestResponsesAreBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"sub":"`))
		w.Write([]byte(strings.Repeat("a", maxResponseBytes)))
		w.Write([]byte(`"}`))
	}))
	defer srv.Close()
	_, _, err := fetch(context.Background(), boundedClient(srv.Client()), http.MethodGet, srv.URL, "tok")
	if !errors.Is(err, errResponseTooLarge) {
		t.Fatalf("fetch() error = %v, want %v", err, errResponseTooLarge)
	}
}

func TestBoundedClientLeavesTheCallersClientAlone(t *testing.T) {
	c := &http.Client{}
	b := boundedClient(c)
	if c.Transport != nil {
		t.Error("boundedClient changed the caller's client")
	}
	if _, ok := b.Transport.(limitTransport); !ok {
		t.Errorf("bounded client transport is %T", b.Transport)
	}
	if d := boundedClient(nil); d.Timeout != defaultTimeout {
		t.Errorf("default client timeout = %v, want %v", d.Timeout, defaultTimeout)
	}
}
