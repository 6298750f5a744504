// Package deploy holds the deployment files (compose.yaml, haproxy.cfg);
// this test keeps them true to the daemon's settings.
package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/openintern/openintern/config"
)

type composeFile struct {
	Name     string                    `yaml:"name"`
	XNode    map[string]any            `yaml:"x-node"`
	XNodeEnv map[string]any            `yaml:"x-node-env"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image           string            `yaml:"image"`
	Restart         string            `yaml:"restart"`
	Command         []string          `yaml:"command"`
	Build           map[string]any    `yaml:"build"`
	Hostname        string            `yaml:"hostname"`
	Environment     map[string]string `yaml:"environment"`
	DependsOn       map[string]any    `yaml:"depends_on"`
	Healthcheck     map[string]any    `yaml:"healthcheck"`
	Ports           []string          `yaml:"ports"`
	Volumes         []string          `yaml:"volumes"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
}

var nodes = []string{"node1", "node2", "node3"}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	// Strict: a key compose would not read is a mistake here too.
	if err := yaml.UnmarshalWithOptions(raw, &f, yaml.Strict()); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return f
}

// interpolated is v with compose's ${VAR:-default} replaced by its default
// (the variables are unset here).
func interpolated(v string) string {
	return regexp.MustCompile(`\$\{[A-Z_]+:-([^}]*)\}`).ReplaceAllString(v, "$1")
}

// The compose file has three nodes over PostgreSQL with pgvector and Redis
// behind a load balancer, each node with its own id and the shared
// settings, and every node's environment is a config the daemon accepts.
func TestComposeFile(t *testing.T) {
	f := loadCompose(t)
	for _, name := range append(slices.Clone(nodes), "lb", "postgres", "redis") {
		if _, ok := f.Services[name]; !ok {
			t.Fatalf("no service %s", name)
		}
	}
	if img := f.Services["postgres"].Image; !strings.HasPrefix(img, "pgvector/pgvector:") {
		t.Errorf("postgres image %q has no pgvector", img)
	}
	for _, name := range []string{"postgres", "redis", "lb"} {
		if f.Services[name].Healthcheck["test"] == nil {
			t.Errorf("%s has no healthcheck", name)
		}
	}
	if lb := f.Services["lb"]; len(lb.Ports) != 1 || !strings.HasPrefix(lb.Ports[0], "3000:") {
		t.Errorf("the load balancer publishes %v, want 3000", lb.Ports)
	}

	ids := map[string]bool{}
	for _, name := range nodes {
		s := f.Services[name]
		env := map[string]string{}
		for k, v := range s.Environment {
			env[k] = interpolated(v)
		}
		for _, k := range []string{"DATABASE_URL", "REDIS_URL", "OPENINTERN_NODE_ID", "OPENINTERN_ADVERTISE_ADDR", "OPENINTERN_LEASE_TTL", "OPENINTERN_SHUTDOWN_TIMEOUT"} {
			if env[k] == "" {
				t.Errorf("%s: %s is not set", name, k)
			}
		}
		if env["OPENINTERN_NODE_ID"] != name || ids[env["OPENINTERN_NODE_ID"]] {
			t.Errorf("%s: node id %q (each node needs its own)", name, env["OPENINTERN_NODE_ID"])
		}
		ids[env["OPENINTERN_NODE_ID"]] = true
		if !strings.Contains(env["OPENINTERN_ADVERTISE_ADDR"], name+":3000") || s.Hostname != name {
			t.Errorf("%s: advertises %q as host %q", name, env["OPENINTERN_ADVERTISE_ADDR"], s.Hostname)
		}
		if !strings.Contains(env["DATABASE_URL"], "@postgres:") || !strings.Contains(env["REDIS_URL"], "//redis:") {
			t.Errorf("%s: not on the compose file's postgres and redis: %v", name, env)
		}
		if env["AUTH"] != config.AuthToken || env["HOST"] != "0.0.0.0" {
			t.Errorf("%s: listens on %q with auth %q; a reachable node needs AUTH=token", name, env["HOST"], env["AUTH"])
		}
		for _, dep := range []string{"postgres", "redis"} {
			d, _ := s.DependsOn[dep].(map[string]any)
			if d["condition"] != "service_healthy" {
				t.Errorf("%s: does not wait for a healthy %s: %v", name, dep, s.DependsOn[dep])
			}
		}
		if test, _ := s.Healthcheck["test"].([]any); len(test) < 2 || !slices.Contains(test, any("health")) {
			t.Errorf("%s: healthcheck %v, want the binary's health probe", name, s.Healthcheck["test"])
		}
		if !slices.ContainsFunc(s.Volumes, func(v string) bool { return strings.HasPrefix(v, "workspace:") }) || env["OPENINTERN_WORKSPACE"] == "" {
			t.Errorf("%s: no shared workspace (%v)", name, s.Volumes)
		}

		// The daemon reads this environment without complaint.
		cfg, err := config.Load("", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			t.Errorf("%s: the daemon refuses its environment: %v", name, err)
			continue
		}
		// Docker kills a node this long after SIGTERM: enough for the drain
		// and the shutdown, each bounded by the shutdown timeout.
		grace, err := time.ParseDuration(s.StopGracePeriod)
		if err != nil || grace < 2*time.Duration(cfg.ShutdownTimeout) {
			t.Errorf("%s: stop_grace_period %q is under twice the shutdown timeout %s", name, s.StopGracePeriod, cfg.ShutdownTimeout)
		}
	}
	if _, ok := f.Volumes["workspace"]; !ok {
		t.Error("no workspace volume")
	}
}

// The load balancer sends to every node and checks each one's readiness,
// so a draining node leaves the rotation.
func TestHAProxyConfig(t *testing.T) {
	raw, err := os.ReadFile("haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	for _, n := range nodes {
		if !regexp.MustCompile(`(?m)^\s*server\s+` + n + `\s+` + n + `:3000\b`).MatchString(cfg) {
			t.Errorf("haproxy.cfg does not send to %s:3000", n)
		}
	}
	for _, want := range []string{"option httpchk GET /readyz", "http-check expect status 200", "bind :8080", "monitor-uri /lb-health"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
	if strings.Contains(cfg, "cookie") || strings.Contains(cfg, "balance source") {
		t.Error("sticky sessions: any node serves any stream, so none are needed")
	}
}

// The Dockerfile builds the static binary the way the docs say, and runs it
// as a non-root user.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, want := range []string{"CGO_ENABLED=0 go build -trimpath", "gcr.io/distroless/static", "USER 65532", "EXPOSE 3000", `"health"`, "AS build"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
