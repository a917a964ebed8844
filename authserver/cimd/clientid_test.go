package cimd

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestValidateClientID(t *testing.T) {
	tests := []struct {
		name, clientID, reason string // reason "" means valid
	}{
		{"plain", "https://app.example.com/client.json", ""},
		{"with a port", "https://app.example.com:8443/client", ""},
		{"with a query (SHOULD NOT, but allowed)", "https://app.example.com/client?v=2", ""},
		{"root path (NOT RECOMMENDED, but allowed)", "https://app.example.com/", ""},
		{"escaped slash stays as written", "https://app.example.com/a%2Fb", ""},
		{"http", "http://app.example.com/client", "must start with https://"},
		{"scheme upper case", "HTTPS://app.example.com/client", "must start with https://"},
		{"not a URL at all", "my-client", "must start with https://"},
		{"no path", "https://app.example.com", "must contain a path"},
		{"no path but a query", "https://app.example.com?x", "must contain a path"},
		{"fragment", "https://app.example.com/client#x", "must not contain a fragment"},
		{"empty fragment", "https://app.example.com/client#", "must not contain a fragment"},
		{"user info", "https://user@app.example.com/client", "must not contain user info"},
		{"user and password", "https://u:p@app.example.com/client", "must not contain user info"},
		{"no host", "https:///client", "must have a host"},
		{"port but no host", "https://:443/client", "must have a host"},
		{"dot segment", "https://app.example.com/./client", `must not contain "." or ".." path segments`},
		{"dot-dot segment", "https://app.example.com/a/../client", `must not contain "." or ".." path segments`},
		{"trailing dot-dot", "https://app.example.com/a/..", `must not contain "." or ".." path segments`},
		{"encoded dot-dot", "https://app.example.com/a/%2e%2E/client", `must not contain "." or ".." path segments`},
		{"encoded dot", "https://app.example.com/%2E/client", `must not contain "." or ".." path segments`},
		{"space", "https://app.example.com/my client", "must be in canonical form"},
		{"bad escape", "https://app.example.com/%zz", "not a valid URL"},
		{"control character", "https://app.example.com/\x7f", "not a valid URL"},
		{"too long", "https://app.example.com/" + strings.Repeat("a", MaxClientIDLength), "longer than 2048 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateClientID(tt.clientID)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("ValidateClientID(%q) = %v, want valid", tt.clientID, err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrInvalidClientID) || !strings.HasPrefix(e.Reason, tt.reason) {
				t.Fatalf("ValidateClientID(%q) = %v, want ErrInvalidClientID with reason starting %q", tt.clientID, err, tt.reason)
			}
		})
	}
}

func TestFetchRefusesInvalidClientIDWithoutNetwork(t *testing.T) {
	s := newDocServer(t)
	f := s.fetcher(Options{})
	id := strings.Replace(s.url("/client"), "https://", "http://", 1)
	if _, err := f.Fetch(context.Background(), id); !errors.Is(err, ErrInvalidClientID) {
		t.Fatalf("Fetch(%q) = %v, want ErrInvalidClientID", id, err)
	}
	if _, err := f.Fetch(context.Background(), s.url("/client#frag")); !errors.Is(err, ErrInvalidClientID) {
		t.Fatalf("Fetch with fragment = %v, want ErrInvalidClientID", err)
	}
	if n := s.totalHits(); n != 0 {
		t.Fatalf("server was contacted %d times", n)
	}
}

func TestIsClientIDURL(t *testing.T) {
	for id, want := range map[string]bool{
		"https://app.example.com/c": true, "https://": true, // form only; Fetch validates
		"http://app.example.com/c": false, "my-client": false, "": false, "HTTPS://x/y": false,
	} {
		if got := IsClientIDURL(id); got != want {
			t.Errorf("IsClientIDURL(%q) = %v, want %v", id, got, want)
		}
	}
}
