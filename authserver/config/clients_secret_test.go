package config

import (
	"strings"
	"testing"
)

func TestClientsSecretValidation(t *testing.T) {
	tests := []struct {
		name   string
		secret *ClientsSecret
		want   []string // substrings of the error; none means valid
	}{
		{"absent is fine", nil, nil},
		{"a name and a key are enough", &ClientsSecret{Name: "github-authserver-clients", Key: "clients.yaml"}, nil},
		{"a namespace may be given", &ClientsSecret{Namespace: "team-a", Name: "x", Key: "k"}, nil},
		{"name and key are required", &ClientsSecret{}, []string{"clientsSecret.name: required", "clientsSecret.key: required"}},
		{"a name that is not an object name", &ClientsSecret{Name: "Bad_Name", Key: "k"}, []string{"clientsSecret.name:"}},
		{"a key with a slash", &ClientsSecret{Name: "x", Key: "a/b"}, []string{"clientsSecret.key:"}},
		{"a namespace with dots", &ClientsSecret{Namespace: "a.b", Name: "x", Key: "k"}, nil},
		{"an upper-case namespace", &ClientsSecret{Namespace: "Team", Name: "x", Key: "k"}, []string{"clientsSecret.namespace:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Issuer = "https://auth.example.com"
			c.Upstream = Upstream{Type: UpstreamGitHub, ClientID: "id"}
			c.ClientsSecret = tt.secret
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want an error containing %q, got none", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestClientsSecretRoundTrips(t *testing.T) {
	c := Default()
	c.Issuer = "https://auth.example.com"
	c.Upstream = Upstream{Type: UpstreamGitHub, ClientID: "id", ClientSecretFile: "/s"}
	c.ClientsSecret = &ClientsSecret{Namespace: "ns", Name: "n", Key: "clients.yaml"}
	data, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data, nil)
	if err != nil {
		t.Fatalf("Parse(Marshal(c)): %v\n%s", err, data)
	}
	if *got.ClientsSecret != *c.ClientsSecret {
		t.Errorf("clientsSecret = %+v, want %+v", got.ClientsSecret, c.ClientsSecret)
	}
}
