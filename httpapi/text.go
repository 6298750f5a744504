package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// PostgreSQL cannot store a NUL character in text, SQLite can: rather than a
// 500 on one store and stored data on the other, NUL is refused in all input.

// checkText refuses NUL in the path and the query (bodies are checked where
// they are decoded, in bindJSON and ingest).
func checkText(c *gin.Context) {
	if strings.IndexByte(c.Request.URL.Path, 0) >= 0 {
		writeError(c, http.StatusBadRequest, "invalid_text", "the path contains a NUL character")
		return
	}
	q, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		writeError(c, http.StatusBadRequest, "invalid_query", "malformed query string: "+err.Error())
		return
	}
	for k, vs := range q {
		if strings.IndexByte(k, 0) >= 0 {
			writeError(c, http.StatusBadRequest, "invalid_text", "a query parameter name contains a NUL character")
			return
		}
		for _, v := range vs {
			if strings.IndexByte(v, 0) >= 0 {
				writeError(c, http.StatusBadRequest, "invalid_text", "query parameter "+strconv.Quote(k)+" contains a NUL character")
				return
			}
		}
	}
	c.Next()
}

// jsonNUL returns the name of the field whose key or string value holds a
// NUL character (for a key, the field the key is in; "" at the top level),
// and whether there is one. raw is valid JSON.
func jsonNUL(raw []byte) (string, bool) {
	// A NUL can only be written escaped: raw control characters are invalid JSON.
	if !bytes.Contains(raw, []byte(`\u0000`)) {
		return "", false
	}
	// One frame per open object or array: the field it is the value of, and
	// in an object the current key and whether a key comes next.
	type frame struct {
		name, key         string
		object, expectKey bool
	}
	stack := []frame{{}}
	top := func() *frame { return &stack[len(stack)-1] }
	// current is the field a value read now belongs to.
	current := func() string {
		if t := top(); t.object {
			return t.key
		}
		return top().name
	}
	valueDone := func() {
		if t := top(); t.object {
			t.expectKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				stack = append(stack, frame{name: current(), object: v == '{', expectKey: v == '{'})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			t := top()
			if t.object && t.expectKey {
				if strings.IndexByte(v, 0) >= 0 {
					return t.name, true
				}
				t.key, t.expectKey = v, false
				continue
			}
			if strings.IndexByte(v, 0) >= 0 {
				return current(), true
			}
			valueDone()
		default:
			valueDone()
		}
	}
}

// nulMessage is the error message for a NUL in field.
func nulMessage(field string) string {
	if field == "" {
		return "the body contains a NUL character, which text cannot hold"
	}
	return "field " + strconv.Quote(field) + " contains a NUL character, which text cannot hold"
}
