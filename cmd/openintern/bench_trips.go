package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// roundTripsMetric is the daemon's count of round trips to its database
// by statement kind (PostgreSQL only), read from /metrics before and after
// the measured part.
const roundTripsMetric = "openintern_store_round_trips_total"

// tripsReport is the round trips to the database per turn, as the daemon
// itself counted them: those of the turns (the critical path: the HTTP
// requests, the stream and the agent's run) apart from background work
// (the summary writer), each by statement kind.
type tripsReport struct {
	PerTurn           float64    `json:"critical_path_per_turn"`
	BackgroundPerTurn float64    `json:"background_per_turn"`
	Kinds             []tripKind `json:"kinds"`
}

type tripKind struct {
	Op      string  `json:"op"`
	PerTurn float64 `json:"per_turn"`
}

// roundTrips reads the daemon's counters; nil when it exports none (SQLite,
// or /metrics not readable).
func (b *bench) roundTrips(ctx context.Context) map[string]float64 {
	req, err := b.client.newRequest(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return nil
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := b.client.http.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return parseRoundTrips(resp.Body)
}

// parseRoundTrips reads the round-trip counters from the Prometheus text
// format.
func parseRoundTrips(r io.Reader) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prefix := roundTripsMetric + `{op="`
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		end := strings.LastIndex(line, `"}`)
		if end < len(prefix) {
			continue
		}
		op, err := strconv.Unquote(`"` + line[len(prefix):end] + `"`)
		if err != nil {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+2:]), 64)
		if err != nil {
			continue
		}
		out[op] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// tripsBetween is the report of the round trips made between two readings.
func tripsBetween(before, after map[string]float64, turns int) *tripsReport {
	if after == nil || turns == 0 {
		return nil
	}
	rep := &tripsReport{}
	for op, v := range after {
		d := (v - before[op]) / float64(turns)
		if d <= 0 {
			continue
		}
		if strings.HasPrefix(op, "background: ") {
			rep.BackgroundPerTurn += d
		} else {
			rep.PerTurn += d
		}
		rep.Kinds = append(rep.Kinds, tripKind{Op: op, PerTurn: round2(d)})
	}
	sort.Slice(rep.Kinds, func(i, j int) bool {
		bi, bj := strings.HasPrefix(rep.Kinds[i].Op, "background: "), strings.HasPrefix(rep.Kinds[j].Op, "background: ")
		if bi != bj {
			return !bi
		}
		if rep.Kinds[i].PerTurn != rep.Kinds[j].PerTurn {
			return rep.Kinds[i].PerTurn > rep.Kinds[j].PerTurn
		}
		return rep.Kinds[i].Op < rep.Kinds[j].Op
	})
	rep.PerTurn, rep.BackgroundPerTurn = round2(rep.PerTurn), round2(rep.BackgroundPerTurn)
	return rep
}

func (t *tripsReport) print(w io.Writer) {
	fmt.Fprintf(w, "  round trips     %.2f a turn on the critical path, %.2f in the background (the daemon's count)\n",
		t.PerTurn, t.BackgroundPerTurn)
	for _, k := range t.Kinds {
		fmt.Fprintf(w, "    %6.2f  %s\n", k.PerTurn, k.Op)
	}
}
