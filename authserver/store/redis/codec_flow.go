package redis

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// Fast paths for the two records every login writes and reads once: the pending
// authorization (consent, callback) and the authorization code (callback, token
// request). They were about a twentieth of the server's CPU in whole flows, most of
// it encoding/json's reflection (docs/performance.md). As with tokens
// (codec_fast.go), the fast path writes exactly what encoding/json writes, reads only
// that form back, and leaves anything else to encoding/json. Every field of the two
// types must be written here or send the record to encoding/json: the tests fill each
// field in turn by reflection (TestFlowRecordCodecCoversEveryField), so a field added
// to store.PendingAuthorization or store.AuthorizationCode and not here fails them.

// recordWriter appends a record's fields as encoding/json does, or gives up (ok is
// false) on anything the fast path does not write itself: a string encoding/json
// would escape, a time MarshalJSON refuses.
type recordWriter struct {
	b  []byte
	ok bool
}

func newRecordWriter(size int) *recordWriter {
	return &recordWriter{b: make([]byte, 0, size), ok: true}
}

// field starts the field: `{"key":` for the first, `,"key":` after.
func (w *recordWriter) field(key string) {
	if len(w.b) == 0 {
		w.b = append(w.b, '{')
	} else {
		w.b = append(w.b, ',')
	}
	w.b = append(w.b, '"')
	w.b = append(w.b, key...)
	w.b = append(w.b, `":`...)
}

func (w *recordWriter) quoted(v string) {
	w.ok = w.ok && safeJSONString(v)
	w.b = append(w.b, '"')
	w.b = append(w.b, v...)
	w.b = append(w.b, '"')
}

func (w *recordWriter) str(key, v string) {
	w.field(key)
	w.quoted(v)
}

// optStr is a field tagged omitempty.
func (w *recordWriter) optStr(key, v string) {
	if v != "" {
		w.str(key, v)
	}
}

// optStrs is a []string field tagged omitempty.
func (w *recordWriter) optStrs(key string, vs []string) {
	if len(vs) == 0 {
		return
	}
	w.field(key)
	w.b = append(w.b, '[')
	for i, v := range vs {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.quoted(v)
	}
	w.b = append(w.b, ']')
}

func (w *recordWriter) time(key string, t time.Time) {
	w.ok = w.ok && validJSONYear(t)
	w.field(key)
	w.b = append(w.b, '"')
	w.b = t.AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
}

// done closes the record; when the fast path gave up, it is v through encoding/json.
func (w *recordWriter) done(v any) (string, error) {
	if !w.ok {
		b, err := json.Marshal(v)
		return string(b), err
	}
	w.b = append(w.b, '}')
	return string(w.b), nil
}

func encodePending(p *store.PendingAuthorization) (string, error) {
	w := newRecordWriter(256 + len(p.RedirectURI) + len(p.State) + len(p.Scope))
	w.str("client_id", p.ClientID)
	w.str("redirect_uri", p.RedirectURI)
	w.optStr("state", p.State)
	w.optStr("scope", p.Scope)
	w.str("code_challenge", p.CodeChallenge)
	w.str("code_challenge_method", p.CodeChallengeMethod)
	w.optStrs("resource", p.Resource)
	// A device flow's pending authorization (device, device_expires_at,
	// device_user_code) is rare: encoding/json writes it, and decodePending leaves it
	// to encoding/json too.
	w.ok = w.ok && p.Device == nil && p.DeviceExpiresAt.IsZero() && p.DeviceUserCode == ""
	w.optStr("upstream_verifier", p.UpstreamVerifier)
	w.optStr("nonce", p.Nonce)
	w.optStr("upstream_scope", p.UpstreamScope)
	w.optStr("step_up_user", p.StepUpUser)
	w.optStr("browser_binding", p.BrowserBinding)
	w.time("expires_at", p.ExpiresAt)
	return w.done(p)
}

func encodeCode(c *store.AuthorizationCode) (string, error) {
	w := newRecordWriter(256 + len(c.RedirectURI) + len(c.Scope))
	w.str("client_id", c.ClientID)
	w.str("redirect_uri", c.RedirectURI)
	w.optStr("scope", c.Scope)
	w.str("code_challenge", c.CodeChallenge)
	w.str("code_challenge_method", c.CodeChallengeMethod)
	w.optStrs("resource", c.Resource)
	w.str("user_id", c.UserID)
	w.time("auth_time", c.AuthTime)
	w.time("expires_at", c.ExpiresAt)
	return w.done(c)
}

// optStr reads a field tagged omitempty that starts with prefix (`,"key":"`), if the
// record has it.
func (p *tokenParser) optStr(prefix string) string {
	if p.bad || !strings.HasPrefix(p.s, prefix) {
		return ""
	}
	p.s = p.s[len(prefix):]
	v := p.str()
	p.lit(`"`)
	return v
}

// optStrs reads a []string field tagged omitempty that starts with prefix
// (`,"key":[`), if the record has it; present but empty is not nil, as encoding/json
// has it.
func (p *tokenParser) optStrs(prefix string) []string {
	if p.bad || !strings.HasPrefix(p.s, prefix) {
		return nil
	}
	p.s = p.s[len(prefix):]
	vs := []string{}
	for !p.bad && !strings.HasPrefix(p.s, "]") {
		if len(vs) > 0 {
			p.lit(",")
		}
		p.lit(`"`)
		vs = append(vs, p.str())
		p.lit(`"`)
	}
	p.lit("]")
	return vs
}

func decodePending(s string, v *store.PendingAuthorization) error {
	var r store.PendingAuthorization
	p := &tokenParser{s: s}
	p.lit(`{"client_id":"`)
	r.ClientID = p.str()
	p.lit(`","redirect_uri":"`)
	r.RedirectURI = p.str()
	p.lit(`"`)
	r.State = p.optStr(`,"state":"`)
	r.Scope = p.optStr(`,"scope":"`)
	p.lit(`,"code_challenge":"`)
	r.CodeChallenge = p.str()
	p.lit(`","code_challenge_method":"`)
	r.CodeChallengeMethod = p.str()
	p.lit(`"`)
	r.Resource = p.optStrs(`,"resource":[`)
	r.UpstreamVerifier = p.optStr(`,"upstream_verifier":"`)
	r.Nonce = p.optStr(`,"nonce":"`)
	r.UpstreamScope = p.optStr(`,"upstream_scope":"`)
	r.StepUpUser = p.optStr(`,"step_up_user":"`)
	r.BrowserBinding = p.optStr(`,"browser_binding":"`)
	p.lit(`,"expires_at":"`)
	r.ExpiresAt = p.time()
	p.lit(`"}`)
	if p.bad || p.s != "" {
		return json.Unmarshal([]byte(s), v)
	}
	*v = r
	return nil
}

func decodeCode(s string, v *store.AuthorizationCode) error {
	var r store.AuthorizationCode
	p := &tokenParser{s: s}
	p.lit(`{"client_id":"`)
	r.ClientID = p.str()
	p.lit(`","redirect_uri":"`)
	r.RedirectURI = p.str()
	p.lit(`"`)
	r.Scope = p.optStr(`,"scope":"`)
	p.lit(`,"code_challenge":"`)
	r.CodeChallenge = p.str()
	p.lit(`","code_challenge_method":"`)
	r.CodeChallengeMethod = p.str()
	p.lit(`"`)
	r.Resource = p.optStrs(`,"resource":[`)
	p.lit(`,"user_id":"`)
	r.UserID = p.str()
	p.lit(`","auth_time":"`)
	r.AuthTime = p.time()
	p.lit(`","expires_at":"`)
	r.ExpiresAt = p.time()
	p.lit(`"}`)
	if p.bad || p.s != "" {
		return json.Unmarshal([]byte(s), v)
	}
	*v = r
	return nil
}
