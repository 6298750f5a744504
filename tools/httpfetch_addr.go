package tools

import (
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// blockedPrefixes are the ranges http_fetch never dials (unless allow-listed):
// everything that is not a globally reachable unicast address, so an agent
// cannot reach the daemon's host, its network or a cloud metadata service.
var blockedPrefixes = func() []struct {
	prefix netip.Prefix
	why    string
} {
	list := []struct{ cidr, why string }{
		{"0.0.0.0/8", "a \"this network\" address"},
		{"10.0.0.0/8", "a private address"},
		{"100.64.0.0/10", "a carrier-grade NAT address"},
		{"127.0.0.0/8", "a loopback address"},
		{"169.254.0.0/16", "a link-local address (cloud metadata lives here)"},
		{"172.16.0.0/12", "a private address"},
		{"192.0.0.0/24", "an IETF protocol address"},
		{"192.0.2.0/24", "a documentation address"},
		{"192.88.99.0/24", "a 6to4 relay address"},
		{"192.168.0.0/16", "a private address"},
		{"198.18.0.0/15", "a benchmarking address"},
		{"198.51.100.0/24", "a documentation address"},
		{"203.0.113.0/24", "a documentation address"},
		{"224.0.0.0/4", "a multicast address"},
		{"240.0.0.0/4", "a reserved address"}, // includes 255.255.255.255, broadcast
		{"::1/128", "a loopback address"},
		{"::/128", "an unspecified address"},
		{"::/96", "an IPv4-compatible address"},
		{"100::/64", "a discard-only address"},
		{"64:ff9b:1::/48", "a local-use NAT64 address"},
		{"2001::/32", "a Teredo address"},
		{"2001:db8::/32", "a documentation address"},
		{"fc00::/7", "a unique-local (private) address (cloud metadata such as fd00:ec2::254 lives here)"},
		{"fe80::/10", "a link-local address"},
		{"fec0::/10", "a site-local address"},
		{"ff00::/8", "a multicast address"},
	}
	out := make([]struct {
		prefix netip.Prefix
		why    string
	}, len(list))
	for i, e := range list {
		out[i].prefix = netip.MustParsePrefix(e.cidr)
		out[i].why = e.why
	}
	return out
}()

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// BlockedAddr says why http_fetch refuses to dial ip, or "" when ip is a
// public unicast address. IPv4 written inside IPv6 (mapped ::ffff:a.b.c.d,
// NAT64 64:ff9b::a.b.c.d, 6to4 2002:aabb:ccdd::) is judged by the IPv4
// address it reaches.
func BlockedAddr(ip netip.Addr) string {
	if !ip.IsValid() {
		return "not an IP address"
	}
	ip = ip.WithZone("")
	if ip.Is4In6() {
		ip = ip.Unmap()
	}
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64Prefix.Contains(ip):
			if why := BlockedAddr(netip.AddrFrom4([4]byte(b[12:16]))); why != "" {
				return why + " (inside a NAT64 address)"
			}
		case sixToFour.Contains(ip):
			if why := BlockedAddr(netip.AddrFrom4([4]byte(b[2:6]))); why != "" {
				return why + " (inside a 6to4 address)"
			}
		}
	}
	for _, p := range blockedPrefixes {
		if p.prefix.Contains(ip) {
			return p.why
		}
	}
	// Belt and braces for anything the table misses.
	switch {
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsPrivate():
		return "a private address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address"
	case ip.IsMulticast():
		return "a multicast address"
	case ip.IsUnspecified():
		return "an unspecified address"
	}
	return ""
}

// ParseIPv4Number reads a host the way browsers and C's inet_aton do: one to
// four dot-separated parts, each decimal, octal (leading 0) or hex (0x), the
// last part filling the remaining bytes ("2130706433", "0x7f.1",
// "0177.0.0.1", "127.1"). ok is false when host is not such a number, so a
// name like "example.com" is left to DNS. Knowing what these forms mean lets
// http_fetch judge them before anything is dialled.
func ParseIPv4Number(host string) (netip.Addr, bool) {
	host = strings.TrimSuffix(host, ".")
	if host == "" {
		return netip.Addr{}, false
	}
	parts := strings.Split(host, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	nums := make([]uint64, len(parts))
	for i, p := range parts {
		n, ok := parseIPv4Part(p)
		if !ok {
			return netip.Addr{}, false
		}
		nums[i] = n
	}
	last := nums[len(nums)-1]
	var v uint64
	for i, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false
		}
		v |= n << (8 * (3 - i))
	}
	rest := 5 - len(nums) // bytes the last part fills
	if last >= 1<<(8*rest) {
		return netip.Addr{}, false
	}
	v |= last
	if v > math.MaxUint32 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseIPv4Part(p string) (uint64, bool) {
	if p == "" {
		return 0, false
	}
	base := 10
	switch {
	case len(p) >= 2 && (p[:2] == "0x" || p[:2] == "0X"):
		base, p = 16, p[2:]
		if p == "" {
			return 0, true // "0x" alone is 0 to a browser
		}
	case len(p) >= 2 && p[0] == '0':
		base, p = 8, p[1:]
	}
	n, err := strconv.ParseUint(p, base, 64)
	if err != nil || n > math.MaxUint32 {
		return 0, false
	}
	return n, true
}

// fetchAllowList is OPENINTERN_FETCH_ALLOW: hosts (exact, or "*.example.com"
// for its subdomains), host:port, IPs and CIDRs that http_fetch may reach
// even though their address is blocked.
type fetchAllowList struct {
	hosts     map[string]bool // "name" or "name:port", lower case
	wildcards []string        // ".example.com"
	prefixes  []netip.Prefix
	addrPorts map[netip.AddrPort]bool
}

func parseFetchAllow(entries []string) (fetchAllowList, error) {
	a := fetchAllowList{hosts: map[string]bool{}, addrPorts: map[netip.AddrPort]bool{}}
	for _, e := range entries {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		if p, err := netip.ParsePrefix(e); err == nil {
			a.prefixes = append(a.prefixes, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(e); err == nil {
			a.prefixes = append(a.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		if ap, err := netip.ParseAddrPort(e); err == nil {
			a.addrPorts[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] = true
			continue
		}
		if strings.HasPrefix(e, "*.") && validHostName(e[2:]) {
			a.wildcards = append(a.wildcards, e[1:])
			continue
		}
		name := e
		if h, port, ok := strings.Cut(e, ":"); ok {
			if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
				return fetchAllowList{}, fmt.Errorf("%q: bad port", e)
			}
			name = h
		}
		if !validHostName(name) {
			return fetchAllowList{}, fmt.Errorf("%q is not a host name, host:port, IP address or CIDR", e)
		}
		a.hosts[e] = true
	}
	return a, nil
}

func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// host reports whether a host name as dialled (before resolution) is allowed.
func (a fetchAllowList) host(name, port string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if a.hosts[name] || a.hosts[name+":"+port] {
		return true
	}
	for _, w := range a.wildcards {
		if strings.HasSuffix(name, w) {
			return true
		}
	}
	return false
}

// addr reports whether an address actually dialled is allowed.
func (a fetchAllowList) addr(ap netip.AddrPort) bool {
	ip := ap.Addr().WithZone("").Unmap()
	if a.addrPorts[netip.AddrPortFrom(ip, ap.Port())] {
		return true
	}
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// HostAllowList is a list of hosts in OPENINTERN_FETCH_ALLOW's format (host
// names, "*.example.com", host:port, IPs and CIDRs), for others than
// http_fetch that judge a URL by its host (the tool policy).
type HostAllowList struct{ l fetchAllowList }

// ParseHostAllowList parses entries; a bad one is an error naming it.
func ParseHostAllowList(entries []string) (HostAllowList, error) {
	l, err := parseFetchAllow(entries)
	return HostAllowList{l}, err
}

// AllowsURL reports whether u's host is on the list: by name (as written,
// before any resolution), or as an IP literal by address.
func (a HostAllowList) AllowsURL(u *url.URL) bool {
	if a.l.hosts == nil {
		return false
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if strings.EqualFold(u.Scheme, "http") {
			port = "80"
		}
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		n, err := strconv.ParseUint(port, 10, 16)
		return err == nil && a.l.addr(netip.AddrPortFrom(ip, uint16(n)))
	}
	return a.l.host(host, port)
}
