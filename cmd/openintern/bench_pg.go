package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// benchTag marks the bench's own queries so pg_stat_statements' figures can
// leave them out.
const benchTag = "/* openintern-bench */"

// pgStats reads what the bench reports from the daemon's PostgreSQL database:
// the episodic-summary queue depth and, when the pg_stat_statements extension
// is loaded, the statements run per turn.
type pgStats struct {
	pool *pgxpool.Pool
	// statements is false when pg_stat_statements cannot be read; reason says why.
	statements bool
	reason     string
	before     map[string]stmtStat
}

type stmtStat struct {
	query  string
	calls  int64
	execMS float64
}

func openPGStats(ctx context.Context, databaseURL string) (*pgStats, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	p := &pgStats{pool: pool}
	// The bench only reads the extension: creating it is the database
	// owner's choice (it also needs shared_preload_libraries and a restart).
	var created bool
	if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') "+benchTag).Scan(&created); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	switch {
	case !created:
		p.reason = "the pg_stat_statements extension is not in this database: add it to shared_preload_libraries, restart PostgreSQL, and CREATE EXTENSION pg_stat_statements"
	default:
		if p.before, err = p.snapshot(ctx); err != nil {
			p.reason = err.Error()
		} else {
			p.statements = true
		}
	}
	return p, nil
}

func (p *pgStats) Close() { p.pool.Close() }

// queueDepth is the number of completed runs waiting for their summary.
func (p *pgStats) queueDepth(ctx context.Context) (int64, error) {
	var n int64
	err := p.pool.QueryRow(ctx, "SELECT count(*) FROM run_summary_queue "+benchTag).Scan(&n)
	return n, err
}

// sqliteQueue reads the summary queue depth of a spawned daemon's SQLite
// file, through a read-only connection (WAL lets it read beside the writer).
type sqliteQueue struct{ db *sql.DB }

func openSQLiteQueue(path string) (*sqliteQueue, error) {
	db, err := sql.Open("sqlite", path+"?_query_only=1&_busy_timeout=5000")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return &sqliteQueue{db: db}, nil
}

func (q *sqliteQueue) queueDepth(ctx context.Context) (int64, error) {
	var n int64
	err := q.db.QueryRowContext(ctx, "SELECT count(*) FROM run_summary_queue").Scan(&n)
	return n, err
}

func (q *sqliteQueue) Close() { _ = q.db.Close() }

// snapshot reads the statement counters of the current database, keyed by
// query id (and whether the statement was top-level).
func (p *pgStats) snapshot(ctx context.Context) (map[string]stmtStat, error) {
	rows, err := p.pool.Query(ctx, `SELECT queryid::text, query, calls, total_exec_time
		FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND toplevel AND query NOT LIKE '%openintern-bench%' `+benchTag)
	if err != nil {
		return nil, fmt.Errorf("pg_stat_statements: %w", err)
	}
	defer rows.Close()
	out := map[string]stmtStat{}
	for rows.Next() {
		var key string
		var s stmtStat
		if err := rows.Scan(&key, &s.query, &s.calls, &s.execMS); err != nil {
			return nil, fmt.Errorf("pg_stat_statements: %w", err)
		}
		out[key] = s
	}
	return out, rows.Err()
}

// sqlReport is the statements the daemon ran per turn during the measured part.
type sqlReport struct {
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
	// PerTurn counts every statement (BEGIN and COMMIT included) in the
	// database, the background summary writer's too: an upper bound on
	// round trips per turn, since a pipelined batch is one.
	PerTurn float64   `json:"statements_per_turn"`
	Kinds   []sqlKind `json:"kinds,omitempty"`
	Other   *sqlKind  `json:"other,omitempty"`
}

type sqlKind struct {
	Statement    string  `json:"statement"`
	CallsPerTurn float64 `json:"calls_per_turn"`
	MeanMS       float64 `json:"mean_ms"`
	// MSPerTurn is the kind's execution time per turn: where PostgreSQL's
	// time goes.
	MSPerTurn float64 `json:"exec_ms_per_turn"`
}

// sqlKindsShown is how many statement kinds the report lists; the rest are
// summed into Other.
const sqlKindsShown = 25

func (p *pgStats) report(ctx context.Context, turns int) *sqlReport {
	if !p.statements {
		return &sqlReport{Reason: p.reason}
	}
	after, err := p.snapshot(ctx)
	if err != nil {
		return &sqlReport{Reason: err.Error()}
	}
	byKind := map[string]*struct {
		calls int64
		ms    float64
	}{}
	var total int64
	for key, s := range after {
		b := p.before[key]
		calls := s.calls - b.calls
		if calls <= 0 {
			continue
		}
		total += calls
		k := statementKind(s.query)
		e := byKind[k]
		if e == nil {
			e = &struct {
				calls int64
				ms    float64
			}{}
			byKind[k] = e
		}
		e.calls += calls
		e.ms += s.execMS - b.execMS
	}
	r := &sqlReport{Available: true}
	if turns == 0 {
		return r
	}
	r.PerTurn = float64(total) / float64(turns)
	for k, e := range byKind {
		r.Kinds = append(r.Kinds, sqlKind{Statement: k, CallsPerTurn: float64(e.calls) / float64(turns), MeanMS: e.ms / float64(e.calls),
			MSPerTurn: e.ms / float64(turns)})
	}
	slices.SortFunc(r.Kinds, func(a, b sqlKind) int {
		if a.CallsPerTurn != b.CallsPerTurn {
			if a.CallsPerTurn > b.CallsPerTurn {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Statement, b.Statement)
	})
	if len(r.Kinds) > sqlKindsShown {
		other := sqlKind{Statement: fmt.Sprintf("%d other kinds", len(r.Kinds)-sqlKindsShown)}
		for _, k := range r.Kinds[sqlKindsShown:] {
			other.CallsPerTurn += k.CallsPerTurn
			other.MSPerTurn += k.MSPerTurn
		}
		if other.CallsPerTurn > 0 {
			other.MeanMS = other.MSPerTurn / other.CallsPerTurn
		}
		r.Kinds, r.Other = r.Kinds[:sqlKindsShown], &other
	}
	return r
}

var (
	spaceRE   = regexp.MustCompile(`\s+`)
	commentRE = regexp.MustCompile(`(?s)/\*.*?\*/|--[^\n]*`)
)

// statementKind shortens a normalized statement to a readable label: its
// first 90 characters on one line. Statements that differ only further on
// (such as an IN list's length) share a label, and their counts add up.
func statementKind(q string) string {
	q = strings.TrimSpace(spaceRE.ReplaceAllString(commentRE.ReplaceAllString(q, " "), " "))
	if r := []rune(q); len(r) > 90 {
		q = string(r[:89]) + "…"
	}
	return q
}

// localAddress reports whether a host (from a URL) is this machine.
func localAddress(host string) bool {
	if host == "" || host == "localhost" || strings.HasPrefix(host, "/") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// postgresServerPID finds the PostgreSQL server (postmaster) of a database
// URL when it runs on this machine: the process listening on its port.
func postgresServerPID(databaseURL string) (int, bool) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return 0, false
	}
	cc := cfg.ConnConfig
	if !localAddress(cc.Host) {
		return 0, false
	}
	return listenerPID(int(cc.Port))
}

// portOf is the port of a host:port, or 0.
func portOf(hostport string) int {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
