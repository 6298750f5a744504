package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"testing"

	"github.com/openintern/openintern/internal/daemon"
)

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// An idle SSE stream must be cheap: fan-outs to thousands of streams are the
// point of SSE. Each held a 1024-event bus buffer (177 KB); the measure here
// includes the client's side of each connection too.
func TestIdleStreamsAreCheap(t *testing.T) {
	d := startMain(t, &daemon.Main{Config: newConfig(t, "sqlite"), Logger: testLogger(t)})
	const n = 200
	tr := &http.Transport{MaxIdleConnsPerHost: n}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := heapInUse()
	for i := range n {
		req, _ := http.NewRequestWithContext(ctx, "GET", d.URL()+"/api/agents/main/stream", nil)
		req.Header.Set("x-org-id", "o")
		req.Header.Set("x-user-id", fmt.Sprintf("u%d", i%10))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	perStream := (int64(heapInUse()) - int64(before)) / n
	t.Logf("%d KB of heap per idle stream, client side included", perStream>>10)
	if perStream > 120<<10 {
		t.Errorf("an idle stream costs %d KB of heap", perStream>>10)
	}
}
