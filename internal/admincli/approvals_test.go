package admincli

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/mcpauth/mcpauth/authserver/adminapi"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
)

// register registers a public dynamic client and returns its ID.
func (s *server) register(name string) string {
	s.t.Helper()
	body := `{"client_name":"` + name + `","redirect_uris":["` + clientRedirect + `"],"token_endpoint_auth_method":"none"}`
	resp, err := http.Post(s.issuer+"/oauth/register", "application/json", strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ClientID string `json:"client_id"`
	}
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&out) != nil {
		s.t.Fatalf("register: %s", resp.Status)
	}
	return out.ClientID
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// tryLogin runs a browser login for a client that gets the consent page, approving
// it. It returns the code, or "" and the page the login stopped at.
func (s *server) tryLogin(clientID string) (code, page string, status int) {
	s.t.Helper()
	conf := &oauth2.Config{ClientID: clientID, RedirectURL: clientRedirect,
		Endpoint: oauth2.Endpoint{AuthURL: s.issuer + "/oauth/authorize"}}
	jar, _ := cookiejar.New(nil)
	var back *url.URL
	browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), clientRedirect) {
			back = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	read := func(resp *http.Response, err error) (string, int) {
		if err != nil {
			s.t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.StatusCode
	}
	page, status = read(browser.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))))
	if status == http.StatusOK && strings.Contains(page, "csrf_token") {
		form := url.Values{}
		for _, m := range hiddenField.FindAllStringSubmatch(page, -1) {
			form.Add(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
		}
		form.Set("decision", "approve")
		page, status = read(browser.PostForm(s.issuer+"/oauth/consent", form))
	}
	if back != nil {
		return back.Query().Get("code"), "", http.StatusFound
	}
	return "", page, status
}

func TestCLIApprovesAndDeniesHeldClients(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			addr := ""
			if backend == "redis" {
				addr = redisserver.Start(t, redisserver.Options{}).Addr
			}
			s := startServerWith(t, addr, "clientPolicy: {requireApproval: true}\n")
			id := s.register("Held Tool")

			code, page, status := s.tryLogin(id)
			if code != "" || status != http.StatusForbidden || !strings.Contains(page, "Waiting for approval") {
				t.Fatalf("before approval: code %q, %d %.200s", code, status, page)
			}
			if out := s.admin("approvals", "--pending"); !strings.Contains(out, id) || !strings.Contains(out, "Held Tool") || !strings.Contains(out, "pending") {
				t.Fatalf("approvals --pending:\n%s", out)
			}
			var list adminapi.ApprovalList
			if err := json.Unmarshal([]byte(s.admin("approvals", "--status", "pending", "--json")), &list); err != nil || len(list.Approvals) != 1 {
				t.Fatalf("approvals --json: %+v %v", list, err)
			}

			if out := s.admin("approve", id); !strings.Contains(out, "approved client "+id) {
				t.Fatalf("approve: %s", out)
			}
			if out := s.admin("approvals", "--pending"); !strings.Contains(out, "no pending clients") {
				t.Errorf("still pending after approve:\n%s", out)
			}
			if code, page, status := s.tryLogin(id); code == "" {
				t.Fatalf("after approval the login stopped: %d %.200s", status, page)
			}

			// The client ID may also follow the flags.
			exit, _, errOut := cli(t, nil, "admin", "deny", "--server", s.issuer, "--token-file", s.tokenFile, id)
			if exit != ExitOK {
				t.Fatalf("deny: exit %d %s", exit, errOut)
			}
			if _, page, status := s.tryLogin(id); status != http.StatusForbidden || !strings.Contains(page, "has not allowed") {
				t.Fatalf("after deny: %d %.200s", status, page)
			}
			if out := s.admin("approvals", "--status", "denied"); !strings.Contains(out, id) {
				t.Errorf("approvals --status denied:\n%s", out)
			}
		})
	}
}

func TestCLIApprovalUsageErrors(t *testing.T) {
	s := startServer(t, "")
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"admin", "approve", "--token-file", s.tokenFile}, ExitUsage, "approve needs a client ID"},
		{[]string{"admin", "deny", "a", "b", "--token-file", s.tokenFile}, ExitUsage, `unexpected argument "b"`},
		{[]string{"admin", "approvals", "--status", "maybe", "--token-file", s.tokenFile}, ExitUsage, `--status "maybe" is not one of`},
		{[]string{"admin", "approvals", "--pending", "--status", "denied", "--token-file", s.tokenFile}, ExitUsage, "not both"},
		{[]string{"admin", "approve", "desktop", "--server", s.issuer, "--token-file", s.tokenFile}, ExitFailed, "pre-registered"},
		// Outside approval mode a denial would not hold: the server says so.
		{[]string{"admin", "deny", "mcp_client_x", "--server", s.issuer, "--token-file", s.tokenFile}, ExitFailed, "requireApproval is off"},
	} {
		code, out, errOut := cli(t, nil, tt.args...)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) {
			t.Errorf("%v: exit %d, %q %q; want %d mentioning %q", tt.args, code, out, errOut, tt.code, tt.want)
		}
	}
}
