package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/openintern/openintern/store"
)

// IdempotencyStore keeps the answers of POSTs sent with an Idempotency-Key
// (both stores implement it; see store.IdempotencyClaim).
type IdempotencyStore interface {
	ClaimIdempotencyKey(ctx context.Context, c store.IdempotencyClaim) (store.IdempotencyResult, error)
	CompleteIdempotencyKey(ctx context.Context, c store.IdempotencyClaim, resp store.IdempotencyResponse) error
	ReleaseIdempotencyKey(ctx context.Context, c store.IdempotencyClaim) error
	DeleteExpiredIdempotencyKeys(ctx context.Context, now time.Time) (int64, error)
}

// Idempotency headers: the client's key, and the mark of a replayed answer.
const (
	IdempotencyKeyHeader      = "Idempotency-Key"
	IdempotentReplayedHeader  = "Idempotent-Replayed"
	maxIdempotencyKeyLen      = 255
	maxIdempotentResponseBody = 1 << 20
	// idempotencySweepEvery spaces the deletes of expired keys, which run
	// inside a request so that no goroutine outlives the daemon.
	idempotencySweepEvery = 10 * time.Minute
	// idempotencyWriteTimeout bounds keeping or releasing a key after the
	// handler, which runs even when the client has gone.
	idempotencyWriteTimeout = 5 * time.Second
)

// idempotency makes a POST with an Idempotency-Key happen once: the key is
// claimed in the store before the handler runs and the handler's response is
// kept, so the same request again gets that response (with
// Idempotent-Replayed: true) instead of a second message or run. The same key
// for another request (method, path, query or body) is 422; while the first
// is still running it is 409. A 5xx (or a cancelled request) releases the key,
// since the work may not have happened and a retry must be able to run.
func (s *Server) idempotency(c *gin.Context) {
	values := c.Request.Header.Values(IdempotencyKeyHeader)
	if c.Request.Method != http.MethodPost || len(values) == 0 {
		c.Next()
		return
	}
	if len(values) > 1 || !validIdempotencyKey(values[0]) {
		writeError(c, http.StatusBadRequest, "bad_idempotency_key",
			IdempotencyKeyHeader+" must be one value of 1-255 printable ASCII characters")
		return
	}
	is := s.deps.Idempotency
	if is == nil {
		writeError(c, http.StatusNotImplemented, "idempotency_unsupported", "this store does not keep idempotency keys")
		return
	}
	var body []byte
	if c.Request.Body != nil {
		raw, err := io.ReadAll(c.Request.Body)
		if err != nil {
			if !bodyReadError(c, err) {
				writeError(c, http.StatusBadRequest, "bad_body", "cannot read request body: "+err.Error())
			}
			return
		}
		body = raw
		c.Request.Body = io.NopCloser(bytes.NewReader(raw))
	}
	ctx := c.Request.Context()
	now := s.now()
	s.sweepIdempotency(ctx, is, now)
	claim := store.IdempotencyClaim{
		Scope: scopeOf(c), Key: values[0], Fingerprint: requestFingerprint(c.Request, body),
		Token: uuid.NewString(), Now: now, TTL: s.deps.IdempotencyTTL,
	}
	res, err := is.ClaimIdempotencyKey(ctx, claim)
	if err != nil {
		s.fail(c, err, "idempotency key")
		return
	}
	switch res.Outcome {
	case store.IdempotencyReplay:
		c.Header(IdempotentReplayedHeader, "true")
		if res.Response.ContentType != "" {
			c.Header("Content-Type", res.Response.ContentType)
		}
		c.Status(res.Response.Status)
		_, _ = c.Writer.Write(res.Response.Body)
		c.Abort()
		return
	case store.IdempotencyInFlight:
		c.Header("Retry-After", "1")
		writeError(c, http.StatusConflict, "idempotency_key_in_flight", "a request with this "+IdempotencyKeyHeader+" is still running; retry shortly")
		return
	case store.IdempotencyMismatch:
		writeError(c, http.StatusUnprocessableEntity, "idempotency_key_reused",
			"this "+IdempotencyKeyHeader+" was used for another request (method, path or body); use a new key")
		return
	}

	rec := &recordingWriter{ResponseWriter: c.Writer}
	c.Writer = rec
	finished := false
	defer func() {
		// A panic (answered 500 further out) or a failure leaves the key free
		// for a retry; a kept answer is replayed for a day.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idempotencyWriteTimeout)
		defer cancel()
		status := rec.Status()
		var err error
		if !finished || status >= 500 || status == 499 || rec.overflow {
			err = is.ReleaseIdempotencyKey(wctx, claim)
		} else {
			err = is.CompleteIdempotencyKey(wctx, claim, store.IdempotencyResponse{
				Status: status, ContentType: rec.Header().Get("Content-Type"), Body: rec.body.Bytes(),
			})
		}
		if err != nil {
			s.deps.Logger.Warn("idempotency key not kept", "path", c.Request.URL.Path, "request_id", c.GetString("request_id"), "err", err)
		}
	}()
	c.Next()
	finished = true
}

// validIdempotencyKey: 1-255 printable ASCII characters.
func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > maxIdempotencyKeyLen {
		return false
	}
	for i := range len(k) {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// requestFingerprint identifies a request by method, path, query and body.
func requestFingerprint(r *http.Request, body []byte) string {
	h := sha256.New()
	for _, part := range []string{r.Method, r.URL.EscapedPath(), r.URL.RawQuery} {
		_, _ = io.WriteString(h, strconv.Itoa(len(part))+":"+part+"\n")
	}
	_, _ = h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// sweepIdempotency deletes the expired keys of every scope, at most once per
// idempotencySweepEvery across the server's requests.
func (s *Server) sweepIdempotency(ctx context.Context, is IdempotencyStore, now time.Time) {
	next := s.idemSweep.Load()
	if now.UnixNano() < next || !s.idemSweep.CompareAndSwap(next, now.Add(idempotencySweepEvery).UnixNano()) {
		return
	}
	if n, err := is.DeleteExpiredIdempotencyKeys(ctx, now); err != nil {
		s.deps.Logger.Warn("deleting expired idempotency keys failed", "err", err)
	} else if n > 0 {
		s.deps.Logger.Debug("expired idempotency keys deleted", "count", n)
	}
}

// now is the API's clock (Deps.Now).
func (s *Server) now() time.Time {
	if s.deps.Now != nil {
		return s.deps.Now()
	}
	return time.Now()
}

// recordingWriter passes the response through and keeps a copy of its body,
// up to maxIdempotentResponseBody (a larger one is not kept).
type recordingWriter struct {
	gin.ResponseWriter
	body     bytes.Buffer
	overflow bool
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	w.keep(b)
	return w.ResponseWriter.Write(b)
}

func (w *recordingWriter) WriteString(str string) (int, error) {
	w.keep([]byte(str))
	return w.ResponseWriter.WriteString(str)
}

func (w *recordingWriter) keep(b []byte) {
	if w.overflow || w.body.Len()+len(b) > maxIdempotentResponseBody {
		w.overflow = true
		return
	}
	w.body.Write(b)
}
