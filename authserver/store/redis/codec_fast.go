package redis

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// Fast paths of the codec for the records on the hot paths, measured with `make bench`
// (docs/performance.md). They read and write the very JSON encoding/json does, so
// records stay readable by either and by redis-cli:
//
//   - Tokens (introspection reads one per request, rotation writes two) are encoded
//     and decoded by hand. Anything out of the ordinary (a string that needs escaping,
//     fields in another order, an unknown field) goes to encoding/json instead.
//   - Clients (every token request and authorization request reads one) are decoded
//     by encoding/json once per distinct record: the decoded value is remembered under
//     the record's exact bytes, so a later read of the same bytes costs a map lookup.
//     Nothing can go stale: a changed or deleted record has other bytes, or none.

// safeJSONString reports whether s can be written between quotes as it is, with the
// bytes encoding/json would leave unescaped (it escapes <, > and & too).
func safeJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// encodeToken writes t as encoding/json would.
func encodeToken(t *store.Token) (string, error) {
	ok := safeJSONString(t.GrantID) && safeJSONString(t.ClientID) && safeJSONString(t.UserID) && safeJSONString(t.Scope) &&
		validJSONYear(t.IssuedAt) && validJSONYear(t.ExpiresAt)
	for _, r := range t.Resource {
		ok = ok && safeJSONString(r)
	}
	if !ok {
		b, err := json.Marshal(t)
		return string(b), err
	}
	b := make([]byte, 0, 160+len(t.GrantID)+len(t.ClientID)+len(t.UserID)+len(t.Scope)+32*len(t.Resource))
	b = append(b, `{"grant_id":"`...)
	b = append(b, t.GrantID...)
	b = append(b, `","client_id":"`...)
	b = append(b, t.ClientID...)
	b = append(b, `","user_id":"`...)
	b = append(b, t.UserID...)
	b = append(b, '"')
	if t.Scope != "" {
		b = append(b, `,"scope":"`...)
		b = append(b, t.Scope...)
		b = append(b, '"')
	}
	if len(t.Resource) > 0 {
		b = append(b, `,"resource":[`...)
		for i, r := range t.Resource {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, r...)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	b = append(b, `,"issued_at":"`...)
	b = t.IssuedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","expires_at":"`...)
	b = t.ExpiresAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `"}`...)
	return string(b), nil
}

// validJSONYear: time.Time's MarshalJSON fails outside years 0 to 9999; leave those
// to it.
func validJSONYear(t time.Time) bool {
	y := t.Year()
	return y >= 0 && y <= 9999
}

// decodeToken reads what encodeToken (or encoding/json) wrote.
func decodeToken(s string, t *store.Token) error {
	if tok, ok := parseToken(s); ok {
		*t = tok
		return nil
	}
	return json.Unmarshal([]byte(s), t)
}

// tokenParser walks a record in encodeToken's form; any surprise sets bad.
type tokenParser struct {
	s   string
	bad bool
}

// lit consumes the literal p.
func (p *tokenParser) lit(l string) {
	if !p.bad && strings.HasPrefix(p.s, l) {
		p.s = p.s[len(l):]
		return
	}
	p.bad = true
}

// str consumes a string's characters up to its closing quote, which it leaves. Only
// what encodeToken writes is expected: an escape, a control character or anything
// beyond ASCII (encoding/json's business: it checks UTF-8) is a surprise.
func (p *tokenParser) str() string {
	if p.bad {
		return ""
	}
	i := strings.IndexByte(p.s, '"')
	if i < 0 {
		p.bad = true
		return ""
	}
	v := p.s[:i]
	for j := 0; j < len(v); j++ {
		if c := v[j]; c < 0x20 || c > 0x7e || c == '\\' {
			p.bad = true
			return ""
		}
	}
	p.s = p.s[i:]
	return v
}

func (p *tokenParser) time() time.Time {
	v := p.str()
	if p.bad {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		p.bad = true
	}
	return t
}

func parseToken(s string) (store.Token, bool) {
	var t store.Token
	p := &tokenParser{s: s}
	p.lit(`{"grant_id":"`)
	t.GrantID = p.str()
	p.lit(`","client_id":"`)
	t.ClientID = p.str()
	p.lit(`","user_id":"`)
	t.UserID = p.str()
	p.lit(`"`)
	if strings.HasPrefix(p.s, `,"scope":"`) {
		p.lit(`,"scope":"`)
		t.Scope = p.str()
		p.lit(`"`)
	}
	if strings.HasPrefix(p.s, `,"resource":[`) {
		p.lit(`,"resource":[`)
		t.Resource = []string{} // as encoding/json: present but empty is not nil
		for !p.bad && !strings.HasPrefix(p.s, "]") {
			if len(t.Resource) > 0 {
				p.lit(",")
			}
			p.lit(`"`)
			t.Resource = append(t.Resource, p.str())
			p.lit(`"`)
		}
		p.lit("]")
	}
	p.lit(`,"issued_at":"`)
	t.IssuedAt = p.time()
	p.lit(`","expires_at":"`)
	t.ExpiresAt = p.time()
	p.lit(`"}`)
	if p.bad || p.s != "" {
		return store.Token{}, false
	}
	return t, true
}

// clientMemoSize bounds the decoded clients remembered; past it the memo starts over.
// About 1 MiB of memory; a miss costs only a decode.
const clientMemoSize = 1024

// clientMemo remembers decoded clients by their exact record.
type clientMemo struct {
	mu sync.Mutex
	m  map[string]store.Client // record -> decoded
}

var clients = &clientMemo{m: map[string]store.Client{}}

// decodeClient decodes a client record, from the memo when these bytes were decoded
// before. The slices are copied, so no caller can change what another sees.
func decodeClient(s string, c *store.Client) error {
	clients.mu.Lock()
	v, ok := clients.m[s]
	clients.mu.Unlock()
	if !ok {
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return err
		}
		clients.mu.Lock()
		if len(clients.m) >= clientMemoSize {
			clear(clients.m)
		}
		clients.m[s] = v
		clients.mu.Unlock()
	}
	copyClient(c, v)
	return nil
}

func copyClient(c *store.Client, v store.Client) {
	*c = v
	c.RedirectURIs = slices.Clone(v.RedirectURIs)
	c.GrantTypes = slices.Clone(v.GrantTypes)
	c.ResponseTypes = slices.Clone(v.ResponseTypes)
}

// rememberClient puts the record writeClient just encoded from c into the memo, as
// encoding/json would decode it, so that the first read after a registration (the
// client's authorization request) costs a lookup, not a decode. A client with a
// string that is not valid UTF-8 (which decoding would change) is left out. Every
// field of store.Client must be handled here: TestClientMemoPrimedEveryField sets
// each in turn by reflection and compares with encoding/json.
func rememberClient(rec string, c store.Client) {
	for _, v := range [...]string{c.ID, c.SecretHash, c.Name, c.TokenEndpointAuthMethod, c.Scope, c.ApplicationType,
		c.ClientURI, c.LogoURI, c.RegistrationTokenHash, c.Source} {
		if !utf8.ValidString(v) {
			return
		}
	}
	for _, l := range [][]string{c.RedirectURIs, c.GrantTypes, c.ResponseTypes} {
		for _, v := range l {
			if !utf8.ValidString(v) {
				return
			}
		}
	}
	var v store.Client
	copyClient(&v, c)
	// Slices: encoding/json leaves an omitted (omitempty, empty) field nil, and keeps
	// null and [] apart where the field is always written.
	if len(v.GrantTypes) == 0 {
		v.GrantTypes = nil
	}
	if len(v.ResponseTypes) == 0 {
		v.ResponseTypes = nil
	}
	if c.RedirectURIs != nil && len(c.RedirectURIs) == 0 {
		v.RedirectURIs = []string{}
	}
	var ok bool
	if v.CreatedAt, ok = jsonTime(c.CreatedAt); !ok {
		return
	}
	if v.ExpiresAt, ok = jsonTime(c.ExpiresAt); !ok {
		return
	}
	if !c.LastUsedAt.IsZero() { // omitzero: a zero time is not written, and stays zero
		if v.LastUsedAt, ok = jsonTime(c.LastUsedAt); !ok {
			return
		}
	}
	clients.mu.Lock()
	if len(clients.m) >= clientMemoSize {
		clear(clients.m)
	}
	clients.m[rec] = v
	clients.mu.Unlock()
}

// jsonTime is t as it comes back from encoding/json: the text it writes, parsed as
// it parses it (no monotonic reading; the location Parse picks for the offset).
func jsonTime(t time.Time) (time.Time, bool) {
	if !validJSONYear(t) {
		return time.Time{}, false
	}
	var v time.Time
	err := v.UnmarshalJSON(t.AppendFormat([]byte{'"'}, time.RFC3339Nano+`"`))
	return v, err == nil
}
