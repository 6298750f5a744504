package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
)

// The audit log (see store/audit.go) records, one record per request:
//   - every call of a mutating route, with its final status, whether the
//     handler, authorize (403) or the idempotency middleware (a replay, or a
//     refused key) answered it;
//   - every refused use of a token: a 401 or 403 on any route, mutating or
//     not; a refusal before the route's own chain (authenticate's 401) is
//     recorded through auditRefusal.
//
// A request refused before its scope is known (a malformed scope, body or
// content type: 400/413/415) is not recorded, except by auditRefusal: it acted
// on nothing and names no tenant.
//
// The record is written after the handler, when the response is complete but
// not yet flushed. A failed write is logged and counted (AuditFailures) and
// does not fail the request: the request's effect has happened, and an error
// answer would invite a retry that does it twice.

// Context keys of the audit log.
const (
	// errorCodeKey holds the code of the JSON error a request was answered
	// with (set by writeError), the record's Detail.
	errorCodeKey = "error_code"
	// auditedKey marks a request whose record is written, so that it gets
	// exactly one.
	auditedKey = "audited"
	// auditPendingKey holds, for a create, its record as it reads once
	// answered with a status and the id it made (recordInWrite).
	auditPendingKey = "audit_pending"
)

const (
	// auditWriteTimeout bounds writing a record, which happens even when the
	// client has gone.
	auditWriteTimeout = 5 * time.Second
	// auditSweepEvery spaces retention's deletes, which run inside a request
	// so that no goroutine outlives the daemon; auditSweepBudget bounds the
	// time one takes from its request (what it deleted by then stays deleted,
	// the rest waits for the next).
	auditSweepEvery  = 10 * time.Minute
	auditSweepBudget = 2 * time.Second
	// maxCapturedResponse is how much of a create's response is kept to find
	// the id it made.
	maxCapturedResponse = 64 << 10
)

// DetailIdempotentReplay is the Detail of a request answered by replaying an
// earlier answer (Idempotency-Key): it did nothing itself.
const DetailIdempotentReplay = "idempotent_replay"

// createdIDFields are where a create's response names what it made, in the
// order looked for: a memory names its owner agent and a run its agent
// besides their own ids.
var createdIDFields = []string{"id", "memory_id", "run_id", "token_id", "agent_id", "role_id", "group_id", "skill_id"}

// audit records the request (see above). It runs before authorize so that a
// 403 is recorded too.
func (s *Server) audit(spec routeSpec) gin.HandlerFunc {
	action := spec.Method + " " + spec.FullPath()
	mutating := spec.mutating()
	upload := isUploadRoute(spec.FullPath())
	creates := mutating && !strings.Contains(spec.Path, ":")
	return func(c *gin.Context) {
		if s.deps.Audit == nil {
			c.Next()
			return
		}
		var body *bodyHash
		if mutating {
			body = hashBody(c, upload)
		}
		var capture *captureWriter
		if creates {
			capture = &captureWriter{ResponseWriter: c.Writer}
			c.Writer = capture
		}
		if creates {
			c.Set(auditPendingKey, func(status int, target string) store.AuditRecord {
				return s.auditRecord(c, action, body.sum(), target, status, "")
			})
		}
		defer func() {
			if p := recover(); p != nil {
				// recoverPanics answers 500 further out.
				if mutating {
					s.recordRequest(c, action, body.sum(), pathTarget(c), http.StatusInternalServerError, "internal")
				}
				panic(p)
			}
		}()
		c.Next()
		status := c.Writer.Status()
		if !mutating && status != http.StatusUnauthorized && status != http.StatusForbidden {
			return
		}
		detail := c.GetString(errorCodeKey)
		if c.Writer.Header().Get(IdempotentReplayedHeader) == "true" {
			detail = DetailIdempotentReplay
		}
		target := pathTarget(c)
		if capture != nil && status < 300 {
			target = createdID(capture.body.Bytes())
		}
		s.recordRequest(c, action, body.sum(), target, status, detail)
	}
}

// auditRefusal records a request refused before its route's chain ran
// (authenticate: an unknown, expired or revoked token is 401; a scope the
// token does not allow is 403), with the status and error code it is
// answered with. Call it before aborting; the record names the token when
// the principal is set, else a digest of the secret that was sent.
func (s *Server) auditRefusal(c *gin.Context, status int, code string) {
	if s.deps.Audit == nil {
		return
	}
	action := c.Request.Method + " " + c.FullPath()
	if c.FullPath() == "" {
		action = c.Request.Method + " " + c.Request.URL.Path
	}
	s.recordRequest(c, action, "", pathTarget(c), status, code)
}

// recordRequest writes the request's one record.
func (s *Server) recordRequest(c *gin.Context, action, argsHash, target string, status int, detail string) {
	if _, done := c.Get(auditedKey); done {
		return
	}
	c.Set(auditedKey, true)
	rec := s.auditRecord(c, action, argsHash, target, status, detail)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), auditWriteTimeout)
	defer cancel()
	if err := s.auditLog.write(ctx, s.deps.Audit, rec); err != nil {
		s.auditFailures.Add(1)
		s.deps.Logger.Error("audit record not written", "action", action, "target", target, "status", status,
			"actor", rec.Actor, "request_id", rec.RequestID, "err", err)
	}
	s.sweepAudit(ctx, rec.Time)
}

// recordInWrite is the request's record for a create that stores it in its
// own transaction (store.NewRun.Audit), as it reads when the create succeeds,
// answered status, having made target: the request then waits for one
// commit instead of two. Nil when the request is not audited here or the
// audit log is not the store's. Call recordedInWrite once the create
// succeeded; a failed one is recorded after the handler as usual.
func (s *Server) recordInWrite(c *gin.Context, status int, target string) *store.AuditRecord {
	if !s.auditInStore {
		return nil
	}
	pending, ok := c.Get(auditPendingKey)
	if !ok {
		return nil
	}
	rec := pending.(func(int, string) store.AuditRecord)(status, target)
	return &rec
}

// recordedInWrite marks the request's record as stored by its create.
func (s *Server) recordedInWrite(c *gin.Context, rec *store.AuditRecord) {
	if rec == nil {
		return
	}
	c.Set(auditedKey, true)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), auditWriteTimeout)
	defer cancel()
	s.sweepAudit(ctx, rec.Time)
}

// auditRecord is the request's record.
func (s *Server) auditRecord(c *gin.Context, action, argsHash, target string, status int, detail string) store.AuditRecord {
	p := principalOf(c)
	actor := p.Actor()
	if p.TokenID == "" {
		if secret, ok := bearerSecret(c); ok {
			// A refused secret that names no token: its digest ties
			// repeated attempts together without keeping the secret.
			actor = "secret:" + auth.HashSecret(secret)[:12]
		}
	}
	via := p.Via
	if via == "" {
		via = viaOf(c)
	}
	return store.AuditRecord{
		Time: s.now(), Scope: auditScope(c, p), Actor: actor, ActorName: p.TokenName, Via: via,
		Action: action, Target: target, ArgsHash: argsHash, Outcome: strconv.Itoa(status),
		RequestID: c.GetString("request_id"), Detail: detail,
	}
}

// AuditFailures counts the audit records that could not be written.
func (s *Server) AuditFailures() int64 { return s.auditFailures.Load() }

// auditScope is the tenant a record belongs to: the request's, else the
// principal's, else the one the headers name if it is well formed (a refused
// token's target), else none.
func auditScope(c *gin.Context, p auth.Principal) store.Scope {
	if v, ok := c.Get(scopeKey); ok {
		return v.(store.Scope)
	}
	if p.Scope.OrgID != "" && p.Scope.UserID != "" {
		return p.Scope
	}
	sc := store.Scope{OrgID: c.GetHeader("x-org-id"), UserID: c.GetHeader("x-user-id"), ProjectID: c.GetHeader("x-project-id")}
	for _, v := range []string{sc.OrgID, sc.UserID} {
		if !scopeIDPattern.MatchString(v) {
			return store.Scope{}
		}
	}
	if sc.ProjectID != "" && !scopeIDPattern.MatchString(sc.ProjectID) {
		sc.ProjectID = ""
	}
	return sc
}

// bearerSecret is the token an Authorization: Bearer header sends.
func bearerSecret(c *gin.Context) (string, bool) {
	v, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// viaOf says how a request without a principal came: with a token, or not.
func viaOf(c *gin.Context) string {
	if _, ok := bearerSecret(c); ok {
		return auth.ViaToken
	}
	return auth.ViaNone
}

// pathTarget is the route's ids, in path order, joined by "/".
func pathTarget(c *gin.Context) string {
	ids := make([]string, len(c.Params))
	for i, p := range c.Params {
		ids[i] = p.Value
	}
	return strings.Join(ids, "/")
}

// createdID is the id a create's JSON answer names, or the ids a batch
// delete's answer lists as deleted (joined by ","), or "".
func createdID(body []byte) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return ""
	}
	for _, f := range createdIDFields {
		var id string
		if raw, ok := fields[f]; ok && json.Unmarshal(raw, &id) == nil && id != "" {
			return id
		}
	}
	var deleted []string
	if raw, ok := fields["deleted"]; ok && json.Unmarshal(raw, &deleted) == nil {
		return strings.Join(deleted, ",")
	}
	return ""
}

// bodyHash digests a request body: read whole, or as the handler reads it.
type bodyHash struct {
	fixed string    // the digest of a body read whole
	h     hash.Hash // an upload's digest so far
	n     int64     // bytes fed to h
}

// sum is the record's ArgsHash ("" without a body).
func (b *bodyHash) sum() string {
	switch {
	case b == nil:
		return ""
	case b.h == nil:
		return b.fixed
	case b.n == 0:
		return ""
	}
	return hex.EncodeToString(b.h.Sum(nil))
}

// hashBody digests the request's body: an API body (bounded by limitBody) is
// read whole and put back; an upload, which may be large, is digested as the
// handler reads it. A body that cannot be read is put back with its error, so
// the handler answers as it would have, and is not digested.
func hashBody(c *gin.Context, upload bool) *bodyHash {
	r := c.Request
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	if upload {
		bh := &bodyHash{h: sha256.New()}
		r.Body = &hashingBody{ReadCloser: r.Body, bh: bh}
		return bh
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(raw), errReader{err}))
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	return &bodyHash{fixed: store.HashArgs(raw)}
}

type hashingBody struct {
	io.ReadCloser
	bh *bodyHash
}

func (b *hashingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.bh.h.Write(p[:n])
	b.bh.n += int64(n)
	return n, err
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// captureWriter keeps the start of a response (a create's, to find its id).
type captureWriter struct {
	gin.ResponseWriter
	body bytes.Buffer
}

func (w *captureWriter) Write(b []byte) (int, error) {
	w.keep(b)
	return w.ResponseWriter.Write(b)
}

func (w *captureWriter) WriteString(str string) (int, error) {
	w.keep([]byte(str))
	return w.ResponseWriter.WriteString(str)
}

func (w *captureWriter) keep(b []byte) {
	if room := maxCapturedResponse - w.body.Len(); room > 0 {
		w.body.Write(b[:min(len(b), room)])
	}
}

// auditBatcher writes the records of concurrent requests in shared
// transactions (group commit) instead of one commit each: a request that
// finds no write in flight leads and writes everything queued so far, its own
// record included, then hands the lead to the first request that queued
// meanwhile. Each leader writes one batch, so none waits on others' records
// for long, and no goroutine is left behind.
type auditBatcher struct {
	mu      sync.Mutex
	pending []store.AuditRecord
	waiters []chan error
	busy    bool
}

// errLead tells a queued request that it leads the next batch.
var errLead = errors.New("audit: lead the next batch")

func (b *auditBatcher) write(ctx context.Context, st store.AuditStore, rec store.AuditRecord) error {
	done := make(chan error, 1)
	b.mu.Lock()
	b.pending = append(b.pending, rec)
	b.waiters = append(b.waiters, done)
	lead := !b.busy
	b.busy = true
	b.mu.Unlock()
	if !lead {
		// A leader always answers: it writes within its own timeout.
		if err := <-done; !errors.Is(err, errLead) {
			return err
		}
	}
	b.mu.Lock()
	batch, waiters := b.pending, b.waiters
	b.pending, b.waiters = nil, nil
	b.mu.Unlock()
	err := st.AppendAudit(ctx, batch)
	if err != nil {
		err = errors.Join(err, errors.New("in a batch of "+strconv.Itoa(len(batch))))
	}
	for _, w := range waiters {
		if w != done {
			w <- err
		}
	}
	b.mu.Lock()
	if len(b.waiters) > 0 {
		b.waiters[0] <- errLead
	} else {
		b.busy = false
	}
	b.mu.Unlock()
	return err
}

// sweepAudit deletes the records older than the retention, at most once per
// auditSweepEvery across the server's requests.
func (s *Server) sweepAudit(ctx context.Context, now time.Time) {
	if s.deps.AuditRetention <= 0 {
		return
	}
	next := s.auditSweep.Load()
	if now.UnixNano() < next || !s.auditSweep.CompareAndSwap(next, now.Add(auditSweepEvery).UnixNano()) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, auditSweepBudget)
	defer cancel()
	if n, err := s.deps.Audit.DeleteAuditBefore(ctx, now.Add(-s.deps.AuditRetention)); err != nil {
		s.deps.Logger.Warn("deleting expired audit records failed", "err", err)
	} else if n > 0 {
		s.deps.Logger.Info("expired audit records deleted", "count", n, "retention", s.deps.AuditRetention)
	}
}

// auditRoutes are the audit log's and the metrics summary's routes.
func (s *Server) auditRoutes(api *gin.RouterGroup) {
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/audit", Role: auth.RoleAdmin,
		Summary: "The scope's audit log, newest first"}, s.listAudit)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/metrics/summary", Role: auth.RoleViewer,
		Summary: "Runs by status, success rate, latency percentiles, tokens and failure reasons over a time window"}, s.metricsSummary)
}

const maxAuditFilter = 512

// listAudit answers GET /api/audit?actor&action&target&since&until&cursor&limit.
func (s *Server) listAudit(c *gin.Context) {
	if s.deps.Audit == nil {
		writeError(c, http.StatusNotImplemented, "audit_unsupported", "this store does not keep an audit log")
		return
	}
	f := store.AuditFilter{Actor: c.Query("actor"), Action: c.Query("action"), Target: c.Query("target"), Limit: 50}
	for name, v := range map[string]string{"actor": f.Actor, "action": f.Action, "target": f.Target} {
		if len(v) > maxAuditFilter {
			writeError(c, http.StatusBadRequest, "invalid_"+name, name+" must be at most 512 bytes")
			return
		}
	}
	var ok bool
	if f.Since, f.Until, ok = timeWindow(c, time.Time{}, time.Time{}); !ok {
		return
	}
	if f.BeforeID, ok = queryCursor(c, 1, "cursor must be a record id from next_cursor"); !ok {
		return
	}
	if f.Limit, ok = queryLimit(c, 50, 1000); !ok {
		return
	}
	recs, err := s.deps.Audit.ListAudit(c.Request.Context(), scopeOf(c), f)
	if err != nil {
		s.fail(c, err, "audit records")
		return
	}
	var next any
	if len(recs) == f.Limit {
		next = strconv.FormatInt(recs[len(recs)-1].ID, 10)
	}
	c.JSON(http.StatusOK, gin.H{"records": nonNil(recs), "next_cursor": next})
}

// timeWindow reads ?since and ?until (RFC 3339), with defaults for absent
// ones; since must come before until.
func timeWindow(c *gin.Context, since, until time.Time) (time.Time, time.Time, bool) {
	for _, q := range []struct {
		name string
		dst  *time.Time
	}{{"since", &since}, {"until", &until}} {
		v := c.Query(q.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeError(c, http.StatusBadRequest, "invalid_"+q.name, q.name+" must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
			return since, until, false
		}
		*q.dst = t.UTC()
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		writeError(c, http.StatusBadRequest, "invalid_window", "since must be before until")
		return since, until, false
	}
	return since, until, true
}
