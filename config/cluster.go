package config

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// DefaultLeaseTTL is LeaseTTL's default: a node that dies holds its agents
// this long at most before another node takes them over.
const DefaultLeaseTTL = 15 * time.Second

// Bounds of LeaseTTL: below a second the renewals (a fraction of it) would
// load the database; above ten minutes a dead node's agents wait that long.
const (
	MinLeaseTTL = time.Second
	MaxLeaseTTL = 10 * time.Minute
)

// nodeIDRE is what a node id may be: it names a Redis stream and appears in
// logs and /api/cluster, so it is kept to a host name's charset.
var nodeIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidNodeID reports whether id can name a node.
func ValidNodeID(id string) bool { return nodeIDRE.MatchString(id) }

func (c *Config) validateCluster() error {
	if c.NodeID != "" && !ValidNodeID(c.NodeID) {
		return &Error{Key: "OPENINTERN_NODE_ID", Reason: fmt.Sprintf("must be 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit, got %q", c.NodeID)}
	}
	if c.LeaseTTL < Duration(MinLeaseTTL) || c.LeaseTTL > Duration(MaxLeaseTTL) {
		return &Error{Key: "OPENINTERN_LEASE_TTL", Reason: fmt.Sprintf("must be between %s and %s, got %s", MinLeaseTTL, MaxLeaseTTL, c.LeaseTTL)}
	}
	if c.AdvertiseAddr != "" && !validAdvertiseAddr(c.AdvertiseAddr) {
		return &Error{Key: "OPENINTERN_ADVERTISE_ADDR", Reason: fmt.Sprintf("must be host:port or an http:// or https:// URL, got %q", c.AdvertiseAddr)}
	}
	return nil
}

// validAdvertiseAddr accepts host:port (node1:3000, 10.0.0.5:3000,
// [::1]:3000) or an http(s) URL with a host.
func validAdvertiseAddr(a string) bool {
	if strings.ContainsAny(a, " \t\r\n") || len(a) > 256 {
		return false
	}
	if strings.Contains(a, "://") {
		u, err := url.Parse(a)
		return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
	}
	host, port, err := net.SplitHostPort(a)
	return err == nil && host != "" && port != "" && hostNameRE.MatchString(host)
}

// NewNodeID is a node id for a daemon that was given none: the host name
// (cut to fit) and 6 random hex digits, so two daemons on one host, or a
// daemon restarted before its old leases expired, never share one. Call it
// once per daemon and keep the answer.
func NewNodeID() string {
	host, _ := os.Hostname()
	// The first label is enough to recognise a host.
	host, _, _ = strings.Cut(host, ".")
	var b strings.Builder
	for _, r := range host {
		if b.Len() >= 48 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-_")
	if name == "" {
		name = "node"
	}
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	return name + "-" + hex.EncodeToString(suffix[:])
}
