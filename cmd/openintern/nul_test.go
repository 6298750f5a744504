package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// A NUL in the model's answer (which PostgreSQL text cannot hold) is replaced
// with U+FFFD before it is stored, so the run completes on PostgreSQL as on
// SQLite instead of failing its finish forever.
func TestNulInModelOutputIsStored(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			srv := llmtest.NewServer(t)
			srv.Enqueue(
				llmtest.Reply{Text: "thinking\x00", ToolCalls: []llm.ToolCall{{ID: "call_\x00", Name: "memory_search", Arguments: `{"query":"nul"}`}}},
				llmtest.Reply{Text: "a\x00b"},
			)
			d := startDaemon(t, newConfig(t, kind), srv.Provider())
			c := d.client("nul", "u")
			run := c.waitRun(c.createRun("main", "s", "answer with a NUL"), 20*time.Second)
			if run.Status != store.RunCompleted || run.Output != "a\uFFFDb" {
				t.Fatalf("run %s output %q error %+v", run.Status, run.Output, run.Error)
			}
			if n := srv.RequestCount(); n != 2 {
				t.Fatalf("%d model calls, want 2", n)
			}
			for _, e := range c.events(run.ID) {
				if strings.Contains(string(e.Payload), `\u0000`) {
					t.Fatalf("%s stored a NUL: %s", e.Type, e.Payload)
				}
			}
		})
	}
}

// A store error that retrying cannot cure (here a real check violation of
// PostgreSQL on the run's output) fails the run once, with the reason,
// instead of retrying it forever with the model called again each time; the
// agent then goes on with its inbox.
func TestPermanentStoreErrorFailsTheRun(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		return llmtest.Reply{Text: "answer to " + req.LastUserMessage()}
	})
	cfg := newConfig(t, "postgres")
	d := startDaemon(t, cfg, srv.Provider())
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `ALTER TABLE runs ADD CONSTRAINT no_forbidden CHECK (output NOT LIKE '%forbidden%')`); err != nil {
		t.Fatal(err)
	}
	c := d.client("perm", "u")
	run := c.waitRun(c.createRun("main", "s", "forbidden"), 20*time.Second)
	if run.Status != store.RunFailed || run.Error == nil || run.Error.Code != "store_rejected" || !strings.Contains(run.Error.Message, "23514") {
		t.Fatalf("run %s error %+v", run.Status, run.Error)
	}
	if n := srv.RequestCount(); n != 1 {
		t.Fatalf("%d model calls for a run the store refuses, want 1", n)
	}
	next := c.waitRun(c.createRun("main", "s", "allowed"), 20*time.Second)
	if next.Status != store.RunCompleted {
		t.Fatalf("the next run: %s %+v", next.Status, next.Error)
	}
}
