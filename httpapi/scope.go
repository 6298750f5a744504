package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
)

var scopeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$`)

const scopeKey = "scope"

// scope takes the tenant from headers, else the JSON body, else the query, and
// stores it on the request. Missing org or user is a 400. A request that
// authenticated acts in its token's scope: naming another is 403.
func (s *Server) scope(c *gin.Context) {
	sc := store.Scope{
		OrgID:     c.GetHeader("x-org-id"),
		UserID:    c.GetHeader("x-user-id"),
		ProjectID: c.GetHeader("x-project-id"),
	}
	if sc.OrgID == "" || sc.UserID == "" || sc.ProjectID == "" {
		body, err := s.peekBodyScope(c)
		if err != nil {
			if !bodyReadError(c, err) {
				writeError(c, http.StatusBadRequest, "bad_body", "cannot read request body: "+err.Error())
			}
			return
		}
		sc.OrgID = firstOf(sc.OrgID, body.OrgID, c.Query("org_id"))
		sc.UserID = firstOf(sc.UserID, body.UserID, c.Query("user_id"))
		sc.ProjectID = firstOf(sc.ProjectID, body.ProjectID, c.Query("project_id"))
	}
	for name, v := range map[string]string{"org_id": sc.OrgID, "user_id": sc.UserID, "project_id": sc.ProjectID} {
		if v != "" && !scopeIDPattern.MatchString(v) {
			writeError(c, http.StatusBadRequest, "bad_scope", name+" must be 1-128 letters, digits or _.:@- characters")
			return
		}
	}
	if p, ok := c.Get(principalKey); ok {
		principal := p.(auth.Principal)
		scope, mismatch := scopeFromPrincipal(principal, sc)
		if mismatch != "" {
			writeError(c, http.StatusForbidden, "scope_mismatch", mismatch)
			return
		}
		principal.Scope = scope
		c.Set(principalKey, principal)
		c.Set(scopeKey, scope)
		c.Next()
		return
	}
	switch {
	case sc.OrgID == "":
		writeError(c, http.StatusBadRequest, "missing_scope", "org_id is required (header x-org-id, body or query)")
		return
	case sc.UserID == "":
		writeError(c, http.StatusBadRequest, "missing_scope", "user_id is required (header x-user-id, body or query)")
		return
	}
	c.Set(scopeKey, sc)
	c.Set(principalKey, auth.Principal{Role: auth.RoleAdmin, Scope: sc, Via: auth.ViaNone})
	c.Next()
}

type bodyScope struct {
	OrgID     string `json:"org_id"`
	UserID    string `json:"user_id"`
	ProjectID string `json:"project_id"`
}

// peekBodyScope reads scope fields from a JSON body and puts the body back for the handler.
func (s *Server) peekBodyScope(c *gin.Context) (bodyScope, error) {
	var bs bodyScope
	if c.Request.Body == nil || !strings.HasPrefix(c.ContentType(), "application/json") {
		return bs, nil
	}
	raw, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return bs, err
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(raw))
	// A malformed body is reported by the handler's own decoding, with context.
	_ = json.Unmarshal(raw, &bs)
	return bs, nil
}

func scopeOf(c *gin.Context) store.Scope {
	return c.MustGet(scopeKey).(store.Scope)
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// bindJSON decodes a JSON body strictly: unknown fields and trailing data are
// errors, and the message names the problem.
func bindJSON(c *gin.Context, dst any) bool {
	if c.Request.Body == nil {
		writeError(c, http.StatusBadRequest, "invalid_json", "a JSON body is required")
		return false
	}
	var raw json.RawMessage
	dec := json.NewDecoder(c.Request.Body)
	if err := dec.Decode(&raw); err != nil {
		switch {
		case bodyReadError(c, err):
		case errors.Is(err, io.EOF):
			writeError(c, http.StatusBadRequest, "invalid_json", "a JSON body is required")
		default:
			writeError(c, http.StatusBadRequest, "invalid_json", "malformed JSON body: "+err.Error())
		}
		return false
	}
	// Only white space may follow ("{} }" passes dec.More, so read on).
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil || !bodyReadError(c, err) {
			writeError(c, http.StatusBadRequest, "invalid_json", "malformed JSON body: trailing data after the object")
		}
		return false
	}
	// Every body is an object: null or a list would decode to "no change"
	// and be taken for an empty update.
	if raw[0] != '{' {
		writeError(c, http.StatusBadRequest, "invalid_json", "the JSON body must be an object")
		return false
	}
	if field, ok := jsonNUL(raw); ok {
		writeError(c, http.StatusBadRequest, "invalid_text", nulMessage(field))
		return false
	}
	strict := json.NewDecoder(bytes.NewReader(raw))
	strict.DisallowUnknownFields()
	if err := strict.Decode(dst); err != nil {
		writeError(c, http.StatusBadRequest, "invalid_json", "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

// bodyReadError answers the errors of reading a body that are not the
// client's JSON: too large (413) or too slow (408). It reports whether it did.
func bodyReadError(c *gin.Context, err error) bool {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(c, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body exceeds %d bytes", tooLarge.Limit))
	case errors.Is(err, os.ErrDeadlineExceeded):
		writeError(c, http.StatusRequestTimeout, "request_timeout", "the request body did not arrive in time")
	default:
		return false
	}
	return true
}
