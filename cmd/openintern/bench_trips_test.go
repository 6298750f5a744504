package main

import (
	"strings"
	"testing"
)

func TestRoundTripsReport(t *testing.T) {
	before := parseRoundTrips(strings.NewReader(`# HELP openintern_store_round_trips_total Round trips
# TYPE openintern_store_round_trips_total counter
openintern_store_round_trips_total{op="select events"} 10
openintern_store_round_trips_total{op="background: batch: insert memories, insert memory_chunks"} 2
openintern_runs_total{status="completed"} 4
`))
	after := parseRoundTrips(strings.NewReader(`openintern_store_round_trips_total{op="select events"} 30
openintern_store_round_trips_total{op="batch: select \"x\""} 10
openintern_store_round_trips_total{op="background: batch: insert memories, insert memory_chunks"} 7
`))
	rep := tripsBetween(before, after, 10)
	if rep == nil {
		t.Fatal("no report")
	}
	if rep.PerTurn != 3 || rep.BackgroundPerTurn != 0.5 {
		t.Fatalf("per turn %v, background %v; want 3 and 0.5", rep.PerTurn, rep.BackgroundPerTurn)
	}
	want := []tripKind{{`select events`, 2}, {`batch: select "x"`, 1}, {"background: batch: insert memories, insert memory_chunks", 0.5}}
	if len(rep.Kinds) != len(want) {
		t.Fatalf("kinds %v, want %v", rep.Kinds, want)
	}
	for i := range want {
		if rep.Kinds[i] != want[i] {
			t.Fatalf("kinds %v, want %v", rep.Kinds, want)
		}
	}
}
