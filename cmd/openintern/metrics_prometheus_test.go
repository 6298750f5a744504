package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

// prometheusBin is Debian's prometheus, which scripts/services.sh installs.
const prometheusBin = "/usr/bin/prometheus"

// TestPrometheusScrapesMetrics: a real Prometheus, started here on
// 127.0.0.1, scrapes the daemon's /metrics every second, and a query through
// its HTTP API returns the completed-runs counter after a run.
func TestPrometheusScrapesMetrics(t *testing.T) {
	if _, err := os.Stat(prometheusBin); err != nil {
		t.Fatalf("%s: %v (scripts/services.sh installs Debian's prometheus)", prometheusBin, err)
	}
	d := startDaemon(t, newConfig(t, "sqlite"), instantModel{})
	prom := startPrometheus(t, d.Addr().String())

	// Prometheus sees the daemon up before any run: the counter then has no
	// completed series yet.
	prom.waitQuery(t, `up{job="openintern"} == 1`, 1)

	c := d.client("acme", "alice")
	runID := c.createRun("", "s", "hello")
	if run := c.waitRun(runID, 10*time.Second); run.Status != store.RunCompleted {
		t.Fatalf("run = %+v", run)
	}
	prom.waitQuery(t, `openintern_runs_total{job="openintern",status="completed"}`, 1)
}

// prometheusServer is a Prometheus process of the test's.
type prometheusServer struct {
	base string
}

// startPrometheus runs Prometheus on a free loopback port with its data in a
// temporary dir, scraping target (host:port) every second; it is stopped when
// the test ends.
func startPrometheus(t *testing.T, target string) *prometheusServer {
	t.Helper()
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: openintern
    metrics_path: /metrics
    static_configs:
      - targets: [%q]
`, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	var out syncBuffer
	cmd := exec.Command(prometheusBin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("prometheus exited with %v on SIGTERM", err)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			err := <-exited
			t.Errorf("prometheus did not stop within 20 s of SIGTERM (killed: %v)", err)
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	p := &prometheusServer{base: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("prometheus exited at start: %v\n%s", err, out.String())
		default:
		}
		if resp, err := http.Get(p.base + "/-/ready"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30 s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitQuery runs an instant query through Prometheus's HTTP API until it
// returns a sample of at least want (bounded: a few scrape intervals).
func (p *prometheusServer) waitQuery(t *testing.T, query string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for {
		got, raw := p.query(t, query)
		last = raw
		for _, v := range got {
			if v >= want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus query %s: no sample >= %v within 30 s; last answer %s", query, want, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// query returns the values of an instant query's vector result.
func (p *prometheusServer) query(t *testing.T, query string) ([]float64, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/api/v1/query?query="+url.QueryEscape(query), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("query prometheus: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var ans struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil || ans.Status != "success" || ans.Data.ResultType != "vector" {
		t.Fatalf("query %s: %d %s (%v)", query, resp.StatusCode, raw, err)
	}
	var out []float64
	for _, r := range ans.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("query %s: sample %v: %v", query, r.Value, err)
		}
		out = append(out, v)
	}
	return out, string(raw)
}

// freeLoopbackAddr returns a 127.0.0.1 address with a port free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}
