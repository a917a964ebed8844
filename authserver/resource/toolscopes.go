package resource

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
)

// ToolScopes returns every scope a tools/call of tool needs: RequiredScopes, then the
// tool's own (Config.ToolScopes).
func (v *Verifier) ToolScopes(tool string) []string {
	return dedupe(append(v.RequiredScopes(), v.cfg.ToolScopes[tool]...))
}

// CanCallTool reports whether info's scopes, with their implied ones, cover what a
// tools/call of tool needs.
func (v *Verifier) CanCallTool(info *Info, tool string) bool {
	return v.HasScopes(info, v.ToolScopes(tool)...)
}

// inspectsCalls says whether requests are read for their MCP method and tool name.
func (v *Verifier) inspectsCalls() bool {
	return len(v.cfg.ToolScopes) > 0 || v.cfg.FilterToolsList
}

type mcpRequestKey struct{}

// checkCall decides whether info may make this request, needing the route's scopes
// (need) and, for each tools/call in it, the tool's scopes. It answers a refused
// request itself and reports false. On success it returns the request to pass on
// (its body restored) and, when Config.FilterToolsList is on, the tools/list calls
// in it, whose answers are to be filtered.
//
// The Mcp-Method and Mcp-Name headers, when the client sends them, decide first: a
// call they name that the token may not make gets its 403 before the body is read.
// The body is read either way and must agree with them (400 otherwise), since the
// MCP server acts on the body: a header naming a harmless tool must not carry a call
// of another one past the check.
func (v *Verifier) checkCall(w http.ResponseWriter, r *http.Request, info *Info, need []string) (*http.Request, *listCalls, bool) {
	if !v.inspectsCalls() || r.Method != http.MethodPost {
		if !v.HasScopes(info, need...) {
			v.challenge(w, http.StatusForbidden, errInsufficientScope, "the token lacks a scope this operation needs", need)
			return nil, nil, false
		}
		return r, nil, true
	}
	req, _ := r.Context().Value(mcpRequestKey{}).(*mcpRequest)
	if req == nil { // not read by an enclosing RequireScopes
		h, fromHeaders, rerr := headerCall(r.Header)
		if rerr != nil {
			writeRPCError(w, rerr)
			return nil, nil, false
		}
		if fromHeaders && h.method == methodToolsCall {
			if needs := v.callScopes(need, []mcpCall{h}); !v.HasScopes(info, needs...) {
				v.challenge(w, http.StatusForbidden, errInsufficientScope, "the token lacks a scope this tool needs", needs)
				return nil, nil, false
			}
		}
		if req, rerr = readMCPRequest(r, v.cfg.MaxMessageBytes); rerr == nil && fromHeaders {
			rerr = req.checkAgainstHeaders(h)
		}
		if rerr != nil {
			writeRPCError(w, rerr)
			return nil, nil, false
		}
		r = r.WithContext(context.WithValue(r.Context(), mcpRequestKey{}, req))
	}
	if needs := v.callScopes(need, req.calls); !v.HasScopes(info, needs...) {
		v.challenge(w, http.StatusForbidden, errInsufficientScope, "the token lacks a scope this tool needs", needs)
		return nil, nil, false
	}
	var lists *listCalls
	if v.cfg.FilterToolsList {
		for _, c := range req.calls {
			if c.method == methodToolsList && c.id != nil {
				if lists == nil {
					lists = &listCalls{batch: req.batch}
				}
				lists.ids = append(lists.ids, c.id)
			}
		}
	}
	return r, lists, true
}

// listCalls are the tools/list calls of a request, whose answers are filtered.
type listCalls struct {
	ids   []json.RawMessage
	batch bool
}

// callScopes is need plus the scopes of every tool the calls call, in that order and
// without repeats: the one challenge names all of them (the MCP specification:
// "include all scopes required for the current operation in a single challenge").
func (v *Verifier) callScopes(need []string, calls []mcpCall) []string {
	out := slices.Clone(need)
	for _, c := range calls {
		if c.method == methodToolsCall {
			out = append(out, v.cfg.ToolScopes[c.name]...)
		}
	}
	return dedupe(out)
}
