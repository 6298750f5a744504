package postgres

import (
	"fmt"
	"testing"
	"time"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/store"
)

// A table that grew since its last ANALYZE is analyzed; one that did not is
// left alone.
func TestAnalyzeStale(t *testing.T) {
	s := open(t, testenv.PostgresURL(t))
	ctx := t.Context()
	sc := store.Scope{OrgID: "o", UserID: "u"}
	for i := range 250 {
		if _, _, err := s.CreateRun(ctx, store.NewRun{Scope: sc, RunID: fmt.Sprintf("run_%d", i), MessageID: fmt.Sprintf("m%d", i),
			AgentID: "a", Input: "x", SenderType: store.SenderUser, SenderID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	analyzed := func(table string) (bool, int64) {
		var done bool
		var mods int64
		if err := s.pool.QueryRow(ctx, `SELECT last_analyze IS NOT NULL, n_mod_since_analyze FROM pg_stat_user_tables
			WHERE relid = $1::text::regclass`, table).Scan(&done, &mods); err != nil {
			t.Fatal(err)
		}
		return done, mods
	}
	// The counters reach the statistics views a moment after the commits.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := s.analyzeStale(ctx); err != nil {
			t.Fatal(err)
		}
		if done, _ := analyzed("runs"); done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("runs, 250 rows since its last ANALYZE, was not analyzed")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if done, _ := analyzed("memory_terms"); done {
		t.Error("memory_terms, unchanged, was analyzed")
	}
}
