package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The cluster settings come from the file or the environment (which wins),
// default to no node id (the daemon makes one) and a 15 s lease.
func TestClusterSettings(t *testing.T) {
	d := Default()
	if d.NodeID != "" || time.Duration(d.LeaseTTL) != 15*time.Second || d.AdvertiseAddr != "" {
		t.Fatalf("defaults: node %q ttl %s addr %q", d.NodeID, d.LeaseTTL, d.AdvertiseAddr)
	}
	path := filepath.Join(t.TempDir(), "agent.config.json")
	if err := os.WriteFile(path, []byte(`{"node_id": "file-node", "lease_ttl": "30s", "advertise_addr": "node1:3000"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, env(nil))
	if err != nil || cfg.NodeID != "file-node" || cfg.LeaseTTL != Duration(30*time.Second) || cfg.AdvertiseAddr != "node1:3000" {
		t.Fatalf("from file: %v %+v", err, cfg)
	}
	cfg, err = Load(path, env(map[string]string{"OPENINTERN_NODE_ID": "env-node", "OPENINTERN_LEASE_TTL": "5s", "OPENINTERN_ADVERTISE_ADDR": "http://10.0.0.7:3000"}))
	if err != nil || cfg.NodeID != "env-node" || cfg.LeaseTTL != Duration(5*time.Second) || cfg.AdvertiseAddr != "http://10.0.0.7:3000" {
		t.Fatalf("from env: %v %+v", err, cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid settings refused: %v", err)
	}
	if _, err := Load("", env(map[string]string{"OPENINTERN_LEASE_TTL": "soon"})); !isKey(err, "OPENINTERN_LEASE_TTL") {
		t.Fatalf("a bad duration: %v", err)
	}
}

func TestBadClusterValuesNameTheKey(t *testing.T) {
	invalid := map[string]func(*Config){
		"OPENINTERN_NODE_ID":        func(c *Config) { c.NodeID = "node 1" },
		"OPENINTERN_LEASE_TTL":      func(c *Config) { c.LeaseTTL = Duration(500 * time.Millisecond) },
		"OPENINTERN_ADVERTISE_ADDR": func(c *Config) { c.AdvertiseAddr = "node1" },
	}
	for key, mutate := range invalid {
		c := Default()
		mutate(&c)
		if err := c.Validate(); !isKey(err, key) {
			t.Errorf("%s: err %v", key, err)
		}
	}
	for _, bad := range []string{"-x", "a/b", "x\n", string(make([]byte, 65))} {
		if ValidNodeID(bad) {
			t.Errorf("node id %q accepted", bad)
		}
	}
	tooLong := Default()
	tooLong.LeaseTTL = Duration(time.Hour)
	if err := tooLong.Validate(); !isKey(err, "OPENINTERN_LEASE_TTL") {
		t.Errorf("an hour's lease: %v", err)
	}
	for _, bad := range []string{"ftp://x:1", "http://", ":3000", "node1:", "a b:1"} {
		c := Default()
		c.AdvertiseAddr = bad
		if err := c.Validate(); !isKey(err, "OPENINTERN_ADVERTISE_ADDR") {
			t.Errorf("advertise %q: %v", bad, err)
		}
	}
	for _, good := range []string{"node1:3000", "[::1]:3000", "10.0.0.5:80", "https://oi.example.com"} {
		c := Default()
		c.AdvertiseAddr = good
		if err := c.Validate(); err != nil {
			t.Errorf("advertise %q: %v", good, err)
		}
	}
}

// A made-up node id is valid, and two are never the same.
func TestNewNodeID(t *testing.T) {
	a, b := NewNodeID(), NewNodeID()
	if !ValidNodeID(a) || !ValidNodeID(b) {
		t.Fatalf("invalid ids %q %q", a, b)
	}
	if a == b {
		t.Fatalf("two daemons got one id %q", a)
	}
}

func isKey(err error, key string) bool {
	var ce *Error
	return errors.As(err, &ce) && ce.Key == key
}
