package resource

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// The MCP Streamable HTTP transport's request metadata headers (revision 2026-07-28,
// "Standard Request Headers"): the client mirrors the JSON-RPC method, and the
// params.name (tools/call, prompts/get) or params.uri (resources/read), into them.
const (
	headerMcpMethod = "Mcp-Method"
	headerMcpName   = "Mcp-Name"
)

// JSON-RPC error codes this package answers with.
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	// rpcHeaderMismatch is the MCP specification's HeaderMismatch: "The HTTP headers do
	// not match the corresponding values in the request body, or required headers are
	// missing/malformed."
	rpcHeaderMismatch = -32020
)

const (
	methodToolsCall = "tools/call"
	methodToolsList = "tools/list"
)

// mcpCall is one JSON-RPC message of a POST: its method, and for the methods that
// name something (tools/call, prompts/get, resources/read) that name.
type mcpCall struct {
	method string
	name   string
	named  bool            // the method is one whose params carry a name or uri
	id     json.RawMessage // nil for a notification or a response
}

// mcpRequest is what a POST to the MCP endpoint asks for.
type mcpRequest struct {
	calls []mcpCall
	batch bool // a JSON-RPC batch (allowed by protocol versions before 2025-06-18)
}

// rpcError is a request refused before it reaches the MCP server, answered as the
// MCP specification asks: an HTTP status and a JSON-RPC error.
type rpcError struct {
	status  int
	code    int
	message string
	id      json.RawMessage
}

func (e *rpcError) Error() string { return e.message }

// headerCall is what the Mcp-Method and Mcp-Name headers say, when the client sent
// them (ok false: it did not, so the body alone says what is asked).
func headerCall(h http.Header) (mcpCall, bool, *rpcError) {
	methods, names := h.Values(headerMcpMethod), h.Values(headerMcpName)
	if len(methods) == 0 && len(names) == 0 {
		return mcpCall{}, false, nil
	}
	switch {
	case len(methods) > 1 || len(names) > 1:
		return mcpCall{}, false, mismatch("Mcp-Method and Mcp-Name must each be sent once")
	case len(methods) == 0:
		return mcpCall{}, false, mismatch("Mcp-Name was sent without Mcp-Method")
	}
	c := mcpCall{method: methods[0], named: namedMethod(methods[0])}
	if len(names) == 1 {
		name, err := decodeHeaderValue(names[0])
		if err != nil {
			return mcpCall{}, false, mismatch("Mcp-Name: " + err.Error())
		}
		c.name = name
	}
	switch {
	case c.named && len(names) == 0:
		return mcpCall{}, false, mismatch("Mcp-Name is required for " + c.method)
	case !c.named && len(names) == 1:
		return mcpCall{}, false, mismatch("Mcp-Name was sent for " + c.method + ", which names nothing")
	}
	return c, true, nil
}

// decodeHeaderValue undoes the specification's Value Encoding: a value outside the
// plain ASCII header set travels as =?base64?{Base64 of its UTF-8}?=. "Servers MUST
// decode an encoded Mcp-Name ... value before comparing it to the corresponding
// request body value."
func decodeHeaderValue(v string) (string, error) {
	inner, ok := strings.CutPrefix(v, "=?base64?")
	if !ok {
		return v, nil
	}
	inner, ok = strings.CutSuffix(inner, "?=")
	if !ok {
		return v, nil
	}
	raw, err := base64.StdEncoding.DecodeString(inner)
	if err != nil {
		return "", errors.New("malformed base64 value")
	}
	if !utf8.Valid(raw) {
		return "", errors.New("base64 value is not UTF-8")
	}
	return string(raw), nil
}

func namedMethod(m string) bool {
	return m == methodToolsCall || m == "prompts/get" || m == "resources/read"
}

func mismatch(msg string) *rpcError {
	return &rpcError{status: http.StatusBadRequest, code: rpcHeaderMismatch, message: "Header mismatch: " + msg}
}

// readMCPRequest reads the POST body (at most limit bytes), decodes the JSON-RPC
// message or batch in it, and puts the body back for the next handler.
//
// Keys are matched exactly, as the Go MCP SDK matches them (its decoder does not fold
// case): a body whose method this package reads differently from the server that
// runs it would let a call past its scope check. A repeated key counts by its last
// value in both.
func readMCPRequest(r *http.Request, limit int64) (*mcpRequest, *rpcError) {
	if r.Body == nil || r.Body == http.NoBody {
		return &mcpRequest{}, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	_ = r.Body.Close()
	if err != nil {
		return nil, &rpcError{status: http.StatusBadRequest, code: rpcParseError, message: "Parse error: the request body could not be read"}
	}
	if int64(len(body)) > limit {
		return nil, &rpcError{status: http.StatusRequestEntityTooLarge, code: rpcInvalidRequest,
			message: fmt.Sprintf("Invalid request: the JSON-RPC message is larger than %d bytes", limit)}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }

	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return &mcpRequest{}, nil
	}
	parseErr := &rpcError{status: http.StatusBadRequest, code: rpcParseError, message: "Parse error: the body is not a JSON-RPC message"}
	if trimmed[0] != '[' {
		c, err := decodeCall(body)
		if err != nil {
			return nil, parseErr
		}
		return &mcpRequest{calls: []mcpCall{c}}, nil
	}
	var raws []json.RawMessage
	if json.Unmarshal(body, &raws) != nil || len(raws) == 0 {
		return nil, parseErr
	}
	req := &mcpRequest{batch: true}
	for _, raw := range raws {
		c, err := decodeCall(raw)
		if err != nil {
			return nil, parseErr
		}
		req.calls = append(req.calls, c)
	}
	return req, nil
}

// decodeCall reads one JSON-RPC message. A message without "method" is a response the
// client sends back (older protocol versions): it calls nothing.
func decodeCall(raw []byte) (mcpCall, error) {
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msg); err != nil || msg == nil {
		return mcpCall{}, errors.New("not a JSON object")
	}
	if err := ambiguousKeys(raw, "method", "params"); err != nil {
		return mcpCall{}, err
	}
	var c mcpCall
	m, ok := msg["method"]
	if !ok {
		return c, nil
	}
	if err := json.Unmarshal(m, &c.method); err != nil {
		return mcpCall{}, errors.New("method is not a string")
	}
	if id, ok := msg["id"]; ok && !bytes.Equal(id, []byte("null")) {
		c.id = id
	}
	c.named = namedMethod(c.method)
	if !c.named {
		return c, nil
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(msg["params"], &params); err != nil {
		return mcpCall{}, errors.New("params is not an object")
	}
	if err := ambiguousKeys(msg["params"], "name", "uri"); err != nil {
		return mcpCall{}, err
	}
	key := "name"
	if c.method == "resources/read" {
		key = "uri"
	}
	if v, ok := params[key]; ok {
		if err := json.Unmarshal(v, &c.name); err != nil {
			return mcpCall{}, errors.New(key + " is not a string")
		}
	}
	return c, nil
}

// ambiguousKeys refuses an object with a key that another JSON decoder could read as one
// of names: the name in another case (Go's encoding/json, which some MCP servers decode
// with, matches struct fields case-insensitively) or the name twice (decoders disagree
// on which one wins). The scope check must read the very call the server will run, so
// a message it could read differently is refused rather than guessed at.
func ambiguousKeys(raw []byte, names ...string) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	seen := make(map[string]bool, len(names))
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		field, _ := t.(string)
		for _, n := range names {
			if !strings.EqualFold(field, n) {
				continue
			}
			if field != n || seen[n] {
				return fmt.Errorf("ambiguous member %q", field)
			}
			seen[n] = true
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

// checkAgainstHeaders applies the specification's Server Validation: "Servers that
// process the request body MUST reject requests where the values specified in the
// headers do not match the corresponding values in the request body."
func (req *mcpRequest) checkAgainstHeaders(h mcpCall) *rpcError {
	if req.batch {
		return mismatch("Mcp-Method cannot describe a JSON-RPC batch")
	}
	if len(req.calls) != 1 {
		return mismatch("Mcp-Method was sent without a JSON-RPC message")
	}
	c := req.calls[0]
	switch {
	case h.method != c.method:
		return &rpcError{status: http.StatusBadRequest, code: rpcHeaderMismatch, id: c.id,
			message: fmt.Sprintf("Header mismatch: Mcp-Method header value %q does not match body value %q", h.method, c.method)}
	case h.named && h.name != c.name:
		return &rpcError{status: http.StatusBadRequest, code: rpcHeaderMismatch, id: c.id,
			message: fmt.Sprintf("Header mismatch: Mcp-Name header value %q does not match body value %q", h.name, c.name)}
	}
	return nil
}

// writeRPCError answers with a JSON-RPC error response.
func writeRPCError(w http.ResponseWriter, e *rpcError) {
	id := e.id
	if id == nil {
		id = json.RawMessage("null")
	}
	writeJSON(w, e.status, map[string]any{
		"jsonrpc": "2.0",
		"id":      id,
		"error":   map[string]any{"code": e.code, "message": e.message},
	})
}
