package resource

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
)

// toolsFilter is the ResponseWriter of a request holding tools/list calls when
// Config.FilterToolsList is on. It removes from each tools/list result the tools the
// token cannot call, in a JSON answer (buffered until the handler returns) or an SSE
// stream (event by event, as they come: the Streamable HTTP transport may answer a
// POST either way). Other answers pass through untouched.
type toolsFilter struct {
	w       http.ResponseWriter
	ids     map[string]bool // compacted JSON-RPC ids of the tools/list calls
	anyID   bool            // one call, not a batch: every response in the answer is its
	allowed func(tool string) bool

	mode   filterMode
	status int
	buf    bytes.Buffer
}

type filterMode int

const (
	modeUndecided filterMode = iota
	modePass
	modeJSON
	modeSSE
)

func newToolsFilter(w http.ResponseWriter, lists *listCalls, allowed func(string) bool) *toolsFilter {
	f := &toolsFilter{w: w, ids: map[string]bool{}, anyID: !lists.batch, allowed: allowed}
	for _, id := range lists.ids {
		f.ids[compactJSON(id)] = true
	}
	return f
}

func (f *toolsFilter) Header() http.Header { return f.w.Header() }

// Unwrap lets http.ResponseController reach the real writer.
func (f *toolsFilter) Unwrap() http.ResponseWriter { return f.w }

func (f *toolsFilter) WriteHeader(status int) {
	if f.mode != modeUndecided {
		return
	}
	f.status = status
	ct, _, _ := mime.ParseMediaType(f.w.Header().Get("Content-Type"))
	switch {
	case status == http.StatusOK && ct == "application/json":
		f.mode = modeJSON // written in finish, with its new length
		return
	case status == http.StatusOK && ct == "text/event-stream":
		f.mode = modeSSE
		f.w.Header().Del("Content-Length")
	default:
		f.mode = modePass
	}
	f.w.WriteHeader(status)
}

func (f *toolsFilter) Write(b []byte) (int, error) {
	if f.mode == modeUndecided {
		f.WriteHeader(http.StatusOK)
	}
	switch f.mode {
	case modeJSON:
		return f.buf.Write(b)
	case modeSSE:
		f.buf.Write(b)
		return len(b), f.writeEvents()
	}
	return f.w.Write(b)
}

// Flush sends the SSE events complete so far. A JSON answer is held until finish.
func (f *toolsFilter) Flush() {
	if f.mode == modeJSON {
		return
	}
	if f.mode == modeSSE {
		_ = f.writeEvents()
	}
	_ = http.NewResponseController(f.w).Flush()
}

// finish writes what is still held, once the handler has returned.
func (f *toolsFilter) finish() {
	switch f.mode {
	case modeJSON:
		body := f.filterMessage(f.buf.Bytes())
		f.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		f.w.WriteHeader(f.status)
		_, _ = f.w.Write(body)
	case modeSSE:
		_, _ = f.w.Write(f.buf.Bytes()) // an unterminated last event, passed on as it is
	}
}

// writeEvents writes every complete SSE event in the buffer, each data payload
// filtered. Events end at an empty line (WHATWG HTML §9.2.6); lines end in LF or CRLF.
func (f *toolsFilter) writeEvents() error {
	for {
		data := f.buf.Bytes()
		end, next := eventEnd(data)
		if end < 0 {
			return nil
		}
		out := f.rewriteEvent(data[:end], data[:next])
		f.buf.Next(next)
		if _, err := f.w.Write(out); err != nil {
			return err
		}
	}
}

// eventEnd finds the first empty line: the event's length and where the next begins.
func eventEnd(b []byte) (end, next int) {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 1, i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 1, i + 3
		}
	}
	return -1, 0
}

// rewriteEvent filters the data of one event (its lines, each ending in a newline;
// raw is the event with its closing empty line), keeping its other fields. The data
// is rejoined into one line: the JSON encoder writes no raw newline. An event it does
// not change is passed on byte for byte.
func (f *toolsFilter) rewriteEvent(ev, raw []byte) []byte {
	var other, data [][]byte
	for line := range bytes.Lines(ev) {
		trimmed := bytes.TrimRight(line, "\r\n")
		if v, ok := bytes.CutPrefix(trimmed, []byte("data:")); ok {
			data = append(data, bytes.TrimPrefix(v, []byte(" ")))
			continue
		}
		other = append(other, trimmed)
	}
	joined := bytes.Join(data, []byte("\n"))
	payload := f.filterMessage(joined)
	if len(data) == 0 || bytes.Equal(payload, joined) {
		return raw
	}
	var out bytes.Buffer
	for _, l := range other {
		out.Write(l)
		out.WriteByte('\n')
	}
	out.WriteString("data: ")
	out.Write(payload)
	out.WriteString("\n\n")
	return out.Bytes()
}

// filterMessage filters a JSON-RPC response, or a batch of them. Anything it cannot
// read is returned as it is: it is then not a tools/list result.
func (f *toolsFilter) filterMessage(msg []byte) []byte {
	trimmed := bytes.TrimSpace(msg)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var batch []json.RawMessage
		if json.Unmarshal(trimmed, &batch) != nil {
			return msg
		}
		for i, m := range batch {
			batch[i] = f.filterResponse(m)
		}
		out, err := json.Marshal(batch)
		if err != nil {
			return msg
		}
		return out
	}
	return f.filterResponse(msg)
}

func (f *toolsFilter) filterResponse(msg json.RawMessage) json.RawMessage {
	var resp map[string]json.RawMessage
	if json.Unmarshal(msg, &resp) != nil || resp["result"] == nil {
		return msg
	}
	if !f.anyID && !f.ids[compactJSON(resp["id"])] {
		return msg
	}
	var result map[string]json.RawMessage
	if json.Unmarshal(resp["result"], &result) != nil || result["tools"] == nil {
		return msg
	}
	var tools []json.RawMessage
	if json.Unmarshal(result["tools"], &tools) != nil {
		return msg
	}
	kept := make([]json.RawMessage, 0, len(tools))
	for _, t := range tools {
		var tool struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(t, &tool) == nil && f.allowed(tool.Name) {
			kept = append(kept, t)
		}
	}
	var err error
	if result["tools"], err = json.Marshal(kept); err != nil {
		return msg
	}
	if resp["result"], err = json.Marshal(result); err != nil {
		return msg
	}
	out, err := json.Marshal(resp)
	if err != nil {
		return msg
	}
	return out
}

func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}
