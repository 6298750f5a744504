package tools

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// AddrGuard is http_fetch's address check for other outbound HTTP the
// tenants steer (their MCP servers' URLs): loopback, private, link-local
// (cloud metadata) and other non-public addresses are refused unless
// allow-listed, checked on every address actually dialled (after DNS, so a
// name that resolves to 127.0.0.1 is refused too).
type AddrGuard struct {
	allow   fetchAllowList
	timeout time.Duration
}

// NewAddrGuard returns a guard with the allow-list's exceptions (the syntax
// of OPENINTERN_FETCH_ALLOW); it fails on a bad entry.
func NewAddrGuard(allow []string) (*AddrGuard, error) {
	a, err := parseFetchAllow(allow)
	if err != nil {
		return nil, fmt.Errorf("allow-list: %w", err)
	}
	return &AddrGuard{allow: a, timeout: 30 * time.Second}, nil
}

// CheckURL says why u's host, when it is an address literal (in any
// spelling a browser accepts), is refused, or "": names are judged when
// dialled.
func (g *AddrGuard) CheckURL(u *url.URL) string { return literalBlocked(u, g.allow) }

// DialContext dials addr if every address connected to passes the check;
// a refusal wraps ErrBlockedAddress.
func (g *AddrGuard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	hostAllowed := g.allow.host(host, port)
	d := net.Dialer{
		Timeout: g.timeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: cannot parse %q", ErrBlockedAddress, address)
			}
			if !hostAllowed && !g.allow.addr(ap) {
				if why := BlockedAddr(ap.Addr()); why != "" {
					return fmt.Errorf("%w: %s is %s", ErrBlockedAddress, ap.Addr().WithZone(""), why)
				}
			}
			return nil
		},
	}
	return d.DialContext(ctx, network, addr)
}

// Client is an HTTP client that dials through the guard and never through a
// proxy from the environment (a proxy would dial for it, unchecked).
func (g *AddrGuard) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           g.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}
