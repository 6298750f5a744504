package postgres

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

// roundTripCounter is a pgx tracer that counts the round trips the pool
// makes, by statement kind: a statement sent alone is one, a batch (a
// pipeline, however many statements) is one. It is always on: a map look-up
// and an atomic add per round trip, next to a network exchange.
type roundTripCounter struct {
	next pgx.QueryTracer // a tracer the configuration already had, or nil

	mu    sync.RWMutex
	kinds map[string]string        // SQL text → its kind
	n     map[string]*atomic.Int64 // kind → round trips
}

func newRoundTripCounter(next pgx.QueryTracer) *roundTripCounter {
	return &roundTripCounter{next: next, kinds: map[string]string{}, n: map[string]*atomic.Int64{}}
}

// maxKinds bounds the kinds counted apart (SQL built at run time, e.g. with
// a filter's conditions, adds kinds); the rest are counted as "other".
const maxKinds = 200

func (c *roundTripCounter) add(kind string) {
	c.mu.RLock()
	ctr := c.n[kind]
	c.mu.RUnlock()
	if ctr == nil {
		c.mu.Lock()
		if ctr = c.n[kind]; ctr == nil {
			if len(c.n) >= maxKinds {
				kind = "other"
				ctr = c.n[kind]
			}
			if ctr == nil {
				ctr = &atomic.Int64{}
				c.n[kind] = ctr
			}
		}
		c.mu.Unlock()
	}
	ctr.Add(1)
}

func (c *roundTripCounter) kindOf(sql string) string {
	c.mu.RLock()
	k, ok := c.kinds[sql]
	c.mu.RUnlock()
	if ok {
		return k
	}
	k = statementKind(sql)
	c.mu.Lock()
	if len(c.kinds) < 10*maxKinds {
		c.kinds[sql] = k
	}
	c.mu.Unlock()
	return k
}

// RoundTrips returns the round trips made so far, by statement kind (for
// a batch, "batch: " and the kinds of its statements; for background work,
// prefixed "background: ").
func (c *roundTripCounter) RoundTrips() map[string]int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]int64, len(c.n))
	for k, v := range c.n {
		out[k] = v.Load()
	}
	return out
}

// pathOf prefixes the kind of a round trip made for background work.
func pathOf(ctx context.Context, kind string) string {
	if store.IsBackground(ctx) {
		return backgroundPrefix + kind
	}
	return kind
}

// backgroundPrefix starts the kinds of round trips made for background work
// (store.WithBackground): no turn waits for them.
const backgroundPrefix = "background: "

func (c *roundTripCounter) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	c.add(pathOf(ctx, c.kindOf(data.SQL)))
	if c.next != nil {
		return c.next.TraceQueryStart(ctx, conn, data)
	}
	return ctx
}

func (c *roundTripCounter) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	if c.next != nil {
		c.next.TraceQueryEnd(ctx, conn, data)
	}
}

func (c *roundTripCounter) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	var kinds []string
	if data.Batch != nil {
		for _, q := range data.Batch.QueuedQueries {
			k := c.kindOf(q.SQL)
			if len(kinds) == 0 || kinds[len(kinds)-1] != k {
				kinds = append(kinds, k)
			}
		}
	}
	if len(kinds) > 6 {
		kinds = append(kinds[:6], "…")
	}
	c.add(pathOf(ctx, "batch: "+strings.Join(kinds, ", ")))
	if bt, ok := c.next.(pgx.BatchTracer); ok {
		return bt.TraceBatchStart(ctx, conn, data)
	}
	return ctx
}

func (c *roundTripCounter) TraceBatchQuery(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	if bt, ok := c.next.(pgx.BatchTracer); ok {
		bt.TraceBatchQuery(ctx, conn, data)
	}
}

func (c *roundTripCounter) TraceBatchEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchEndData) {
	if bt, ok := c.next.(pgx.BatchTracer); ok {
		bt.TraceBatchEnd(ctx, conn, data)
	}
}

var (
	kindComment = regexp.MustCompile(`--[^\n]*`)
	kindSpace   = regexp.MustCompile(`\s+`)
	kindDML     = regexp.MustCompile(`\b(insert into|update|delete from) ([a-z_][a-z0-9_.]*)`)
	kindTable   = regexp.MustCompile(`\b(?:from|join) ([a-z_][a-z0-9_.]*)\b\s*([(]?)`)
	kindFunc    = regexp.MustCompile(`([a-z_][a-z0-9_]*)\(`)
)

// statementKind names a statement for counting: "begin", "commit",
// "insert memory_chunks", "select events", "select set_config"… A WITH
// statement is named by its first data-modifying statement, a SELECT by its
// first table, or else by its first function other than an aggregate.
func statementKind(sql string) string {
	// A statement may open with a comment saying why it is written so: its
	// kind is that of the SQL after it.
	sql = kindComment.ReplaceAllString(sql, " ")
	s := strings.ToLower(strings.TrimSpace(kindSpace.ReplaceAllString(sql, " ")))
	f := strings.Fields(s)
	if len(f) == 0 {
		return "empty"
	}
	switch f[0] {
	case "select":
	case "with", "insert", "update", "delete":
		if m := kindDML.FindStringSubmatch(s); m != nil {
			return strings.Fields(m[1])[0] + " " + m[2]
		}
	default:
		return f[0]
	}
	for _, m := range kindTable.FindAllStringSubmatch(s, -1) {
		if m[2] == "" {
			return "select " + m[1]
		}
	}
	for _, m := range kindFunc.FindAllStringSubmatch(s, -1) {
		switch m[1] {
		case "select", "count", "coalesce", "exists", "max", "min", "sum", "unnest":
			continue
		}
		return "select " + m[1]
	}
	return "select"
}
