package events_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/store"
)

// reportLatency reports the p50 and p99 of lat in microseconds.
func reportLatency(b *testing.B, lat []time.Duration) {
	b.Helper()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 {
		i := int(q * float64(len(lat)-1))
		return float64(lat[i].Microseconds())
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

// BenchmarkControlDispatchAcrossNodes: the latency from Dispatch on one
// node to the HandleFunc on the node that owns the agent, through that
// node's Redis stream.
func BenchmarkControlDispatchAcrossNodes(b *testing.B) {
	client := testenv.RedisClient(b)
	prefix := testenv.RedisPrefix(b)
	logger := slog.New(slog.DiscardHandler)
	route := func(context.Context, events.Control) string { return "n2" }
	got := make(chan struct{}, 1)
	n1, err := events.NewStreamDispatcher(b.Context(), client, prefix, "n1", route, func(events.Control) {}, logger)
	if err != nil {
		b.Fatal(err)
	}
	defer n1.Close()
	n2, err := events.NewStreamDispatcher(b.Context(), client, prefix, "n2", route,
		func(events.Control) { got <- struct{}{} }, logger)
	if err != nil {
		b.Fatal(err)
	}
	defer n2.Close()
	c := events.Control{Kind: events.ControlWake, Scope: store.Scope{OrgID: "o", UserID: "u"}, AgentID: "a"}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := n1.Dispatch(b.Context(), c); err != nil {
			b.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(waitTimeout):
			b.Fatal("control not handled on n2")
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkBusFanOutAcrossNodes: the latency from Publish on one daemon's
// RedisBus to a subscriber of another daemon's.
func BenchmarkBusFanOutAcrossNodes(b *testing.B) {
	client := testenv.RedisClient(b)
	prefix := testenv.RedisPrefix(b)
	logger := slog.New(slog.DiscardHandler)
	pub, err := events.NewRedisBus(b.Context(), client, prefix, logger)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	sub, err := events.NewRedisBus(b.Context(), client, prefix, logger)
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	scope := store.Scope{OrgID: "o", UserID: "u"}
	ch := sub.Subscribe(b.Context(), scope, nil)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		pub.Publish(b.Context(), event(scope, int64(i+1), "step.completed"))
		select {
		case _, ok := <-ch:
			if !ok {
				b.Fatal("subscription dropped")
			}
		case <-time.After(waitTimeout):
			b.Fatal("event not received by the other bus")
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}
