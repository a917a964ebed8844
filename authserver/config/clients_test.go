package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseClientsFillsDefaults(t *testing.T) {
	clients, err := ParseClients([]byte(`
clients:
- clientID: public
  redirectURIs: ["http://127.0.0.1:33418/"]
- clientID: confidential
  clientName: Agent
  secretHash: ` + HashClientSecret("s3cret") + `
  redirectURIs: ["https://agent.example.com/cb", "com.example.agent:/cb"]
  scopes: [mcp]
`))
	if err != nil {
		t.Fatalf("ParseClients: %v", err)
	}
	want := []Client{
		{ClientID: "public", RedirectURIs: []string{"http://127.0.0.1:33418/"},
			TokenEndpointAuthMethod: AuthMethodNone, GrantTypes: []string{GrantAuthorizationCode, GrantRefreshToken}},
		{ClientID: "confidential", ClientName: "Agent", SecretHash: HashClientSecret("s3cret"),
			RedirectURIs:            []string{"https://agent.example.com/cb", "com.example.agent:/cb"},
			TokenEndpointAuthMethod: AuthMethodClientSecretBasic, GrantTypes: []string{GrantAuthorizationCode, GrantRefreshToken},
			Scopes: []string{"mcp"}},
	}
	if !reflect.DeepEqual(clients, want) {
		t.Fatalf("ParseClients =\n%+v\nwant\n%+v", clients, want)
	}
}

func TestParseClientsEmpty(t *testing.T) {
	for _, in := range []string{"", "clients: []\n", "clients: null\n"} {
		clients, err := ParseClients([]byte(in))
		if err != nil || len(clients) != 0 {
			t.Errorf("ParseClients(%q) = %v, %v; want no clients", in, clients, err)
		}
	}
}

func TestParseClientsNamesEveryInvalidField(t *testing.T) {
	const ok = "  redirectURIs: [https://a.example/cb]\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"clientID required", "- redirectURIs: [https://a.example/cb]\n", []string{"clients[0].clientID: required"}},
		{"clientID printable", "- clientID: 'a b'\n" + ok, []string{"clients[0].clientID: must be printable ASCII"}},
		{"clientID length", "- clientID: " + strings.Repeat("a", 256) + "\n" + ok, []string{"clients[0].clientID: longer than 255 bytes"}},
		{"clientID not a metadata document URL", "- clientID: https://a.example/client\n" + ok, []string{"clients[0].clientID: must not be an http(s) URL"}},
		{"clientID unique", "- clientID: a\n" + ok + "- clientID: a\n" + ok, []string{`clients[1].clientID: "a" is also clients[0]`}},
		{"clientName length", "- clientID: a\n  clientName: " + strings.Repeat("n", 101) + "\n" + ok, []string{"clients[0].clientName: longer than 100"}},
		{"redirectURIs required", "- clientID: a\n", []string{"clients[0].redirectURIs: at least one is required"}},
		{"redirect URI absolute", "- clientID: a\n  redirectURIs: [/cb]\n", []string{`clients[0].redirectURIs[0]: "/cb": must be an absolute URL`}},
		{"redirect URI without fragment", "- clientID: a\n  redirectURIs: ['https://a.example/cb#x']\n", []string{"clients[0].redirectURIs[0]: \"https://a.example/cb#x\": must not contain a fragment"}},
		{"redirect URI http only on loopback", "- clientID: a\n  redirectURIs: [https://a.example/cb, 'http://a.example/cb']\n", []string{"clients[0].redirectURIs[1]: \"http://a.example/cb\": http is allowed only on a loopback host"}},
		{"redirect URI not javascript", "- clientID: a\n  redirectURIs: ['javascript:alert(1)']\n", []string{`clients[0].redirectURIs[0]: "javascript:alert(1)": scheme "javascript" is not allowed`}},
		{"redirect URI not data", "- clientID: a\n  redirectURIs: ['data:text/html,x']\n", []string{`clients[0].redirectURIs[0]: "data:text/html,x": scheme "data" is not allowed`}},
		{"redirect URI https has a host", "- clientID: a\n  redirectURIs: ['https:/cb']\n", []string{`clients[0].redirectURIs[0]: "https:/cb": must have a host`}},
		{"redirect URI unique", "- clientID: a\n  redirectURIs: [https://a.example/cb, https://a.example/cb]\n", []string{"clients[0].redirectURIs[1]: duplicate"}},
		{"auth method known", "- clientID: a\n  tokenEndpointAuthMethod: private_key_jwt\n" + ok, []string{`clients[0].tokenEndpointAuthMethod: "private_key_jwt" is not one of`}},
		{"secret auth needs a secret", "- clientID: a\n  tokenEndpointAuthMethod: client_secret_post\n" + ok, []string{"clients[0].secretHash: required (or secretFile) with tokenEndpointAuthMethod client_secret_post"}},
		{"none with a secret", "- clientID: a\n  tokenEndpointAuthMethod: none\n  secretFile: /s\n" + ok, []string{"clients[0].tokenEndpointAuthMethod: none, but the client has a secret"}},
		{"upstream tokens for a public client", "- clientID: a\n  introspectUpstream: true\n" + ok, []string{"clients[0].introspectUpstream: only a confidential client"}},
		{"resources for a public client", "- clientID: a\n  resources: [https://mcp.example/mcp]\n" + ok, []string{"clients[0].resources: only a confidential client"}},
		{"resource absolute", "- clientID: a\n  secretFile: /s\n  resources: [/mcp]\n" + ok, []string{`clients[0].resources[0]: "/mcp": must be an absolute URI with a host`}},
		{"resource without fragment", "- clientID: a\n  secretFile: /s\n  resources: ['https://mcp.example/#x']\n" + ok, []string{`clients[0].resources[0]: "https://mcp.example/#x": must not contain a fragment`}},
		{"resource unique", "- clientID: a\n  secretFile: /s\n  resources: [https://mcp.example/, https://mcp.example/]\n" + ok, []string{"clients[0].resources[1]: duplicate"}},
		{"secretHash or secretFile", "- clientID: a\n  secretFile: /s\n  secretHash: " + HashClientSecret("x") + "\n" + ok, []string{"clients[0].secretFile: set secretHash or secretFile, not both"}},
		{"secretHash format", "- clientID: a\n  secretHash: 'md5:abc'\n" + ok, []string{`clients[0].secretHash: must be "sha256:" followed by 64 lowercase hex digits`}},
		{"secretHash lowercase", "- clientID: a\n  secretHash: " + strings.ToUpper(HashClientSecret("x")) + "\n" + ok, []string{"clients[0].secretHash: must be"}},
		{"grant type known", "- clientID: a\n  grantTypes: [authorization_code, implicit]\n" + ok, []string{`clients[0].grantTypes[1]: "implicit" is not one of`}},
		{"grant type unique", "- clientID: a\n  grantTypes: [authorization_code, authorization_code]\n" + ok, []string{`clients[0].grantTypes[1]: duplicate`}},
		{"grant types obtain a first token", "- clientID: a\n  grantTypes: [refresh_token]\n" + ok, []string{"clients[0].grantTypes: must include authorization_code, client_credentials or"}},
		{"client_credentials needs a secret", "- clientID: a\n  grantTypes: [client_credentials]\n", []string{"clients[0].grantTypes[0]: client_credentials needs a confidential client"}},
		{"client_credentials without redirect URIs", "- clientID: a\n  secretFile: /s\n  grantTypes: [client_credentials]\n", nil},
		{"device code for a public client without redirect URIs", "- clientID: a\n  grantTypes: [urn:ietf:params:oauth:grant-type:device_code, refresh_token]\n", nil},
		{"redirect URIs still needed with authorization_code", "- clientID: a\n  grantTypes: [authorization_code, client_credentials]\n  secretFile: /s\n", []string{"clients[0].redirectURIs: at least one is required with authorization_code"}},
		{"scopes are scope tokens", "- clientID: a\n  scopes: ['a\\b']\n" + ok, []string{`clients[0].scopes[0]: "a\\b" is not a valid scope`}},
		{"unknown field", "- clientID: a\n  redirect_uris: [x]\n" + ok, []string{"clients[0].redirect_uris: unknown field"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseClients([]byte("clients:\n" + tt.yaml))
			assertProblems(t, err, tt.want...)
		})
	}
}

func TestValidateClientsAgainstConfig(t *testing.T) {
	c := validConfig()
	c.ScopesSupported = []string{"mcp", "admin"}
	c.Clients = []Client{{ClientID: "static", RedirectURIs: []string{"https://s.example/cb"}}}
	c.Normalize()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	fromFile := []Client{
		{ClientID: "static", RedirectURIs: []string{"https://x.example/cb"}},
		{ClientID: "other", RedirectURIs: []string{"https://x.example/cb"}, Scopes: []string{"admin", "root"}},
	}
	assertProblems(t, c.ValidateClients(fromFile),
		`clients[0].clientID: "static" is already a client in the server's configuration`,
		`clients[1].scopes[1]: "root" is not in scopesSupported`)
	if err := c.ValidateClients(nil); err != nil {
		t.Errorf("no clients: %v", err)
	}
}

func TestSecretDigest(t *testing.T) {
	want := sha256.Sum256([]byte("s3cret"))
	files := map[string]string{"/secret": "s3cret\n"}
	readFile := func(p string) ([]byte, error) {
		if v, ok := files[p]; ok {
			return []byte(v), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	tests := []struct {
		name    string
		client  Client
		want    []byte
		wantErr string
	}{
		{"from secretHash", Client{ClientID: "a", SecretHash: HashClientSecret("s3cret")}, want[:], ""},
		{"from secretFile, newline trimmed", Client{ClientID: "a", SecretFile: "/secret"}, want[:], ""},
		{"public client", Client{ClientID: "a"}, nil, ""},
		{"missing file", Client{ClientID: "a", SecretFile: "/nope"}, nil, "client a: secretFile: open /nope: file does not exist"},
		{"malformed hash", Client{ClientID: "a", SecretHash: "sha256:zz"}, nil, "client a: secretHash: must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.client.SecretDigest(readFile)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want prefix %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("SecretDigest = %x, %v; want %x", got, err, tt.want)
			}
		})
	}
}

func TestClientsFileRoundTrip(t *testing.T) {
	clients := []Client{
		{ClientID: "a", ClientName: "A", RedirectURIs: []string{"cursor://anysphere.cursor-mcp/oauth/callback"},
			TokenEndpointAuthMethod: AuthMethodNone, GrantTypes: []string{GrantAuthorizationCode}, Scopes: []string{"mcp"}},
		{ClientID: "b", SecretHash: HashClientSecret("x"), RedirectURIs: []string{"https://b.example/cb"},
			TokenEndpointAuthMethod: AuthMethodClientSecretPost, GrantTypes: []string{GrantAuthorizationCode, GrantRefreshToken}, Trusted: true},
	}
	data, err := MarshalClients(clients)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "clients.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	back, err := LoadClients(path)
	if err != nil {
		t.Fatalf("LoadClients: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(back, clients) {
		t.Fatalf("round trip:\n%s\ngot  %+v\nwant %+v", data, back, clients)
	}
	if data, err := MarshalClients(nil); err != nil || string(data) != "clients: []\n" {
		t.Errorf("MarshalClients(nil) = %q, %v", data, err)
	}
}

func TestLoadClientsErrors(t *testing.T) {
	_, err := LoadClients(filepath.Join(t.TempDir(), "none.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "read clients file: open ") {
		t.Errorf("missing file: %v", err)
	}
	path := filepath.Join(t.TempDir(), "clients.yaml")
	if err := os.WriteFile(path, []byte("clients:\n- clientID: a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadClients(path)
	if err == nil || !strings.Contains(err.Error(), "clients file "+path+":\nclients[0].redirectURIs: at least one is required") {
		t.Errorf("invalid file: %v", err)
	}
}

func TestClientsFileApprovals(t *testing.T) {
	f, err := ParseClientsFile([]byte(`clients:
  - clientID: vscode
    redirectURIs: ["http://127.0.0.1/cb"]
approvals:
  - clientID: https://tools.example.org/client.json
    approvedBy: MCPClient team-a/tools
  - clientID: mcp_client_abc
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Clients) != 1 || len(f.Approvals) != 2 || f.Approvals[0].ApprovedBy != "MCPClient team-a/tools" {
		t.Fatalf("parsed %+v", f)
	}
	data, err := MarshalClientsFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := ParseClientsFile(data); err != nil || len(again.Approvals) != 2 {
		t.Fatalf("round trip: %+v %v", again, err)
	}
	_, err = ParseClientsFile([]byte(`clients:
  - clientID: vscode
    redirectURIs: ["http://127.0.0.1/cb"]
approvals:
  - clientID: ""
  - clientID: vscode
  - clientID: a b
  - clientID: x
  - clientID: x
`))
	assertProblems(t, err,
		`approvals[0].clientID: required`,
		`approvals[1].clientID: "vscode" is a pre-registered client: it needs no approval`,
		`approvals[2].clientID: must be printable ASCII`,
		`approvals[4].clientID: duplicate "x"`)
}
