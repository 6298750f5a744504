package httpapi

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/openintern/openintern/auth"
)

// Operation is one operation of the API document, as a test that calls every
// route (the authorization matrix) needs it.
type Operation struct {
	Method string
	// Path is the document's path, with {param} placeholders (/api/agents/{agent_id}).
	Path string
	// Role is the least role the operation needs; "" for a public one.
	Role auth.Role
	// Public operations need no token and no scope (/healthz, /api/openapi.json).
	Public bool
	// PathParams are the path's parameters, in order.
	PathParams []string
	// Body is the request body's media type ("application/json",
	// "multipart/form-data"), or "" when it takes none.
	Body string
	// Idempotent operations honour Idempotency-Key.
	Idempotent bool
	// Stream operations answer text/event-stream.
	Stream bool
	// Success is the documented success status ("200", "201", "202", "204").
	Success string
}

// Mutating reports whether the operation changes state.
func (o Operation) Mutating() bool { return o.Method != "GET" && o.Method != "HEAD" }

// URL is the operation's path with its parameters filled from params
// (escaped); a missing parameter is an error.
func (o Operation) URL(params map[string]string) (string, error) {
	out := o.Path
	for _, name := range o.PathParams {
		v, ok := params[name]
		if !ok {
			return "", fmt.Errorf("%s %s: no value for path parameter %q", o.Method, o.Path, name)
		}
		out = strings.Replace(out, "{"+name+"}", url.PathEscape(v), 1)
	}
	return out, nil
}

// Operations lists the operations of an API document as served at
// /api/openapi.json, sorted by path, then method.
func Operations(doc []byte) ([]Operation, error) {
	var d struct {
		Paths map[string]map[string]struct {
			Role       string          `json:"x-openintern-role"`
			Public     bool            `json:"x-openintern-public"`
			Idempotent bool            `json:"x-openintern-idempotent"`
			Parameters []docParameter  `json:"parameters"`
			Body       *docRequestBody `json:"requestBody"`
			Responses  map[string]struct {
				Content map[string]json.RawMessage `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("reading the API document: %w", err)
	}
	var ops []Operation
	for path, item := range d.Paths {
		for method, op := range item {
			o := Operation{Method: strings.ToUpper(method), Path: path, Role: auth.Role(op.Role), Public: op.Public, Idempotent: op.Idempotent}
			for _, p := range op.Parameters {
				if p.In == "path" {
					o.PathParams = append(o.PathParams, p.Name)
				}
			}
			if op.Body != nil {
				for mt := range op.Body.Content {
					o.Body = mt
				}
			}
			for status, r := range op.Responses {
				if status[0] == '2' {
					o.Success = status
					_, o.Stream = r.Content["text/event-stream"]
				}
			}
			if !o.Public && !o.Role.Valid() {
				return nil, fmt.Errorf("%s %s: %s is %q, not a role", o.Method, path, RoleExtension, op.Role)
			}
			ops = append(ops, o)
		}
	}
	slices.SortFunc(ops, func(a, b Operation) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	return ops, nil
}

type docParameter struct {
	In   string `json:"in"`
	Name string `json:"name"`
}

type docRequestBody struct {
	Content map[string]json.RawMessage `json:"content"`
}
