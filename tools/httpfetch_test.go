package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// countingListener counts the connections a test server accepted.
type countingListener struct {
	net.Listener
	accepts atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepts.Add(1)
	}
	return c, err
}

// countedServer starts an HTTP server on 127.0.0.1 whose accepts are counted.
func countedServer(t *testing.T, h http.Handler) (*httptest.Server, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = cl
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, cl
}

// testDNS is a tiny DNS server on 127.0.0.1 (UDP). answer gives the
// addresses for a name on its n-th query (from 1) of a type; nil is NXDOMAIN.
type testDNS struct {
	conn    net.PacketConn
	mu      sync.Mutex
	queries map[string]int // "name type" -> count
	answer  func(name string, typ dnsmessage.Type, n int) []netip.Addr
	done    chan struct{}
}

func startDNS(t *testing.T, answer func(name string, typ dnsmessage.Type, n int) []netip.Addr) *testDNS {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &testDNS{conn: conn, queries: map[string]int{}, answer: answer, done: make(chan struct{})}
	go d.serve()
	t.Cleanup(func() {
		_ = conn.Close()
		<-d.done
	})
	return d
}

func (d *testDNS) serve() {
	defer close(d.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
		d.mu.Lock()
		key := fmt.Sprintf("%s %v", name, q.Type)
		d.queries[key]++
		count := d.queries[key]
		d.mu.Unlock()

		var addrs []netip.Addr
		known := d.answer(name, dnsmessage.TypeA, 1) != nil || d.answer(name, dnsmessage.TypeAAAA, 1) != nil
		if q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeAAAA {
			addrs = d.answer(name, q.Type, count)
		}
		rcode := dnsmessage.RCodeSuccess
		if !known {
			rcode = dnsmessage.RCodeNameError
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: rcode})
		_ = b.StartQuestions()
		_ = b.Question(q)
		_ = b.StartAnswers()
		for _, a := range addrs {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}
			if q.Type == dnsmessage.TypeA && a.Is4() {
				_ = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
			}
			if q.Type == dnsmessage.TypeAAAA && a.Is6() {
				_ = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
			}
		}
		msg, err := b.Finish()
		if err != nil {
			continue
		}
		_, _ = d.conn.WriteTo(msg, from)
	}
}

func (d *testDNS) count(name string, typ dnsmessage.Type) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[fmt.Sprintf("%s %v", name, typ)]
}

func (d *testDNS) resolver() *net.Resolver {
	addr := d.conn.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "udp", addr)
	}}
}

// dialLog records every address the fetch tool's check let through; the
// hook refuses all but allowed ones, so no test ever reaches the internet.
type dialLog struct {
	mu     sync.Mutex
	passed []netip.AddrPort
}

func (l *dialLog) hook(allowed ...string) func(netip.AddrPort) error {
	return func(ap netip.AddrPort) error {
		l.mu.Lock()
		l.passed = append(l.passed, ap)
		l.mu.Unlock()
		for _, a := range allowed {
			if ap.String() == a {
				return nil
			}
		}
		return errors.New("test: not connecting to " + ap.String())
	}
}

func (l *dialLog) list() []netip.AddrPort {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]netip.AddrPort(nil), l.passed...)
}

func fetch(t *testing.T, tool *HTTPFetch, args map[string]any) Result {
	t.Helper()
	raw, _ := json.Marshal(args)
	res, err := tool.Run(context.Background(), Call{Name: "http_fetch", Args: raw})
	if err != nil {
		t.Fatalf("http_fetch(%s): %v", raw, err)
	}
	return res
}

// TestHTTPFetchBlocksBypasses: 60+ ways of naming a local, private or
// metadata address (numeric spellings, IPv6 forms, DNS names, userinfo,
// redirects from an allowed server) give no connection to the victim
// listener and no dial of a blocked address.
func TestHTTPFetchBlocksBypasses(t *testing.T) {
	victim, victimLn := countedServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "victim reached")
	}))
	vPort := victim.Listener.Addr().(*net.TCPAddr).Port

	dns := startDNS(t, func(name string, typ dnsmessage.Type, n int) []netip.Addr {
		v4 := map[string][]string{
			"loopback.test": {"127.0.0.1"},
			"meta.test":     {"169.254.169.254"},
			"private.test":  {"10.0.0.1", "192.168.0.1"},
			"mixed.test":    {"127.0.0.1", "10.1.2.3"},
			"zero.test":     {"0.0.0.0"},
			"cgnat.test":    {"100.100.100.200"},
			"v6only.test":   {},
			"mapped.test":   {},
		}
		v6 := map[string][]string{
			"v6only.test":   {"::1"},
			"mapped.test":   {"::ffff:127.0.0.1"},
			"loopback.test": {"::1"},
			"meta.test":     {"fd00:ec2::254"},
		}
		m := v4
		if typ == dnsmessage.TypeAAAA {
			m = v6
		}
		list, ok := m[name]
		if !ok {
			if _, other := v4[name]; other {
				return []netip.Addr{}
			}
			return nil
		}
		out := []netip.Addr{}
		for _, s := range list {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	})

	// The allowed server redirects to wherever ?to= says.
	var dl dialLog
	allowedSrv, allowedLn := countedServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	}))
	aAddr := allowedSrv.Listener.Addr().String()
	tool, err := NewHTTPFetch(FetchConfig{Allow: []string{aAddr}, Resolver: dns.resolver()})
	if err != nil {
		t.Fatal(err)
	}
	tool.afterCheck = dl.hook(aAddr)

	p := fmt.Sprint(vPort)
	direct := []string{
		"http://127.0.0.1:" + p + "/",
		"http://127.1:" + p + "/",
		"http://127.0.1:" + p + "/",
		"http://2130706433:" + p + "/",
		"http://0x7f000001:" + p + "/",
		"http://0x7f.1:" + p + "/",
		"http://0x7f.0.0.1:" + p + "/",
		"http://0X7F.0X0.0X0.0X1:" + p + "/",
		"http://0177.0.0.1:" + p + "/",
		"http://0177.1:" + p + "/",
		"http://017700000001:" + p + "/",
		"http://127.000.000.001:" + p + "/",
		"http://127.0.0.1.:" + p + "/",
		"http://0:" + p + "/",
		"http://0.0.0.0:" + p + "/",
		"http://[::1]:" + p + "/",
		"http://[::]:" + p + "/",
		"http://[0:0:0:0:0:0:0:1]:" + p + "/",
		"http://[::ffff:127.0.0.1]:" + p + "/",
		"http://[::ffff:7f00:1]:" + p + "/",
		"http://[0:0:0:0:0:ffff:127.0.0.1]:" + p + "/",
		"http://[::127.0.0.1]:" + p + "/",
		"http://[64:ff9b::127.0.0.1]:" + p + "/",
		"http://[64:ff9b::a9fe:a9fe]/",
		"http://[2002:7f00:1::]:" + p + "/",
		"http://[2002:a9fe:a9fe::1]/",
		"http://[fe80::1]:" + p + "/",
		"http://[fe80::1%25lo]:" + p + "/",
		"http://[fc00::1]/",
		"http://[fd00:ec2::254]/latest/meta-data/",
		"http://169.254.169.254/latest/meta-data/",
		"http://169.254.169.254:" + p + "/",
		"http://[::ffff:169.254.169.254]/",
		"http://[::ffff:a9fe:a9fe]/",
		"http://0xa9fea9fe/",
		"http://2852039166/",
		"http://0251.0376.0251.0376/",
		"http://169.254.43518/",
		"http://100.100.100.200/latest/meta-data/",
		"http://metadata.google.internal/",
		"http://10.0.0.1/",
		"http://172.16.0.1/",
		"http://192.168.1.1/",
		"http://100.64.0.1/",
		"http://224.0.0.1/",
		"http://255.255.255.255/",
		"http://240.0.0.1/",
		"https://127.0.0.1:" + p + "/",
		"http://localhost:" + p + "/",
		"http://LOCALHOST:" + p + "/",
		"http://localhost.:" + p + "/",
		"http://loopback.test:" + p + "/",
		"http://LoopBack.Test.:" + p + "/",
		"http://meta.test/",
		"http://private.test/",
		"http://mixed.test:" + p + "/",
		"http://zero.test:" + p + "/",
		"http://cgnat.test/",
		"http://v6only.test:" + p + "/",
		"http://mapped.test:" + p + "/",
		"http://example.com@127.0.0.1:" + p + "/",
		"http://127.0.0.1:" + p + "@example.com/",
		"http://user:pass@127.0.0.1:" + p + "/",
		"file:///etc/passwd",
		"gopher://127.0.0.1:" + p + "/",
		"ftp://127.0.0.1:" + p + "/",
		"//127.0.0.1:" + p + "/",
		"http:/127.0.0.1:" + p + "/",
		"http://127.0.0.1 :" + p + "/",
	}
	redirectTargets := []string{
		"http://127.0.0.1:" + p + "/",
		"http://169.254.169.254/latest/meta-data/",
		"http://[fd00:ec2::254]/",
		"http://[::ffff:127.0.0.1]:" + p + "/",
		"http://2130706433:" + p + "/",
		"http://0x7f.1:" + p + "/",
		"http://loopback.test:" + p + "/",
		"http://meta.test/",
		"http://localhost:" + p + "/",
		"file:///etc/passwd",
		"http://user@127.0.0.1:" + p + "/",
		"http://0251.0376.0251.0376/",
		// two hops: allowed -> allowed -> victim
		"http://" + aAddr + "/?to=http://127.0.0.1:" + p + "/",
	}
	var urls []string
	urls = append(urls, direct...)
	for _, to := range redirectTargets {
		urls = append(urls, "http://"+aAddr+"/?to="+to)
	}
	if len(urls) < 60 {
		t.Fatalf("only %d bypass URLs", len(urls))
	}
	// Once with the early refusal of address literals, once with only the
	// check of the address dialled.
	for _, dialCheckOnly := range []bool{false, true} {
		tool.dialCheckOnly = dialCheckOnly
		for _, u := range urls {
			res := fetch(t, tool, map[string]any{"url": u})
			if !res.IsError || strings.Contains(res.Content, "victim reached") {
				t.Errorf("%s: not refused: %q", u, res.Content)
				continue
			}
			t.Logf("dial check only %v: %s: %s", dialCheckOnly, u, res.Content)
		}
	}
	if n := victimLn.accepts.Load(); n != 0 {
		t.Fatalf("the victim listener accepted %d connections", n)
	}
	for _, ap := range dl.list() {
		if ap.String() != aAddr {
			t.Errorf("the check let a dial to %s through", ap)
		}
	}
	// One connection per redirect case and pass, plus the second hop of the
	// two-hop redirect: nothing else was reached, and redirects were followed.
	if want := int64(2 * (len(redirectTargets) + 1)); allowedLn.accepts.Load() != want {
		t.Errorf("the allowed server accepted %d connections, want %d", allowedLn.accepts.Load(), want)
	}
	if dns.count("loopback.test", dnsmessage.TypeA) == 0 {
		t.Error("the test resolver was never asked: names were not resolved through it")
	}
}

// TestHTTPFetchDNSRebinding: a name that resolves to a public address first
// and to loopback afterwards is refused at the second dial, whatever an
// earlier check saw.
func TestHTTPFetchDNSRebinding(t *testing.T) {
	victim, victimLn := countedServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "victim reached")
	}))
	vPort := victim.Listener.Addr().(*net.TCPAddr).Port
	public := netip.MustParseAddr("93.184.215.14")
	dns := startDNS(t, func(name string, typ dnsmessage.Type, n int) []netip.Addr {
		if name != "rebind.test" {
			return nil
		}
		if typ != dnsmessage.TypeA {
			return []netip.Addr{}
		}
		if n == 1 {
			return []netip.Addr{public}
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	})
	var dl dialLog
	tool, err := NewHTTPFetch(FetchConfig{Resolver: dns.resolver()})
	if err != nil {
		t.Fatal(err)
	}
	tool.afterCheck = dl.hook() // public passes the check; the hook keeps the test off the internet
	u := fmt.Sprintf("http://rebind.test:%d/", vPort)

	first := fetch(t, tool, map[string]any{"url": u})
	if !first.IsError || !strings.Contains(first.Content, "test: not connecting to 93.184.215.14") {
		t.Fatalf("first fetch: %q", first.Content)
	}
	second := fetch(t, tool, map[string]any{"url": u})
	if !second.IsError || !strings.Contains(second.Content, "refused: 127.0.0.1 is a loopback address") {
		t.Fatalf("second fetch: %q", second.Content)
	}
	if n := dns.count("rebind.test", dnsmessage.TypeA); n < 2 {
		t.Fatalf("the name was looked up %d times; the rebinding was not exercised", n)
	}
	passed := dl.list()
	if len(passed) != 1 || passed[0].Addr() != public {
		t.Fatalf("dials that passed the check: %v, want only the public address", passed)
	}
	if n := victimLn.accepts.Load(); n != 0 {
		t.Fatalf("the victim listener accepted %d connections", n)
	}
}

func TestHTTPFetchAllowedServer(t *testing.T) {
	var gotPost struct {
		ctype, body string
		auth        bool
	}
	var mu sync.Mutex
	srv, _ := countedServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/page":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, `<!doctype html><html><head><title>The Title</title><style>body{color:red}</style>
<script>var secret = "do-not-show";</script></head><body><h1>Hello</h1><p>First   paragraph with a
<a href="/other?x=1">relative link</a> and <a href="https://example.org/abs">an absolute one</a>.</p>
<noscript>enable js</noscript><ul><li>one</li><li>two</li></ul><img src="x.png" alt="a cat"></body></html>`)
		case "/json":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"a": [1, 2, 3]}`)
		case "/big":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, strings.Repeat("0123456789", 1000))
		case "/bin":
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write([]byte{0, 1, 2, 3, 0xff})
		case "/missing":
			http.NotFound(w, r)
		case "/post":
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			gotPost.ctype, gotPost.body, gotPost.auth = r.Header.Get("Content-Type"), string(body), r.Header.Get("Authorization") != ""
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = fmt.Fprintf(w, `{"method":%q}`, r.Method)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/hop":
			http.Redirect(w, r, "/json", http.StatusMovedPermanently)
		}
	}))
	addr := srv.Listener.Addr().String()
	tool, err := NewHTTPFetch(FetchConfig{Allow: []string{addr}, MaxBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr

	res := fetch(t, tool, map[string]any{"url": base + "/page"})
	if res.IsError {
		t.Fatalf("page: %q", res.Content)
	}
	for _, want := range []string{"status: 200 OK\n", "url: " + base + "/page\n", "content-type: text/html; charset=utf-8\n",
		"The Title\nHello\nFirst paragraph with a [relative link](" + base + "/other?x=1) and [an absolute one](https://example.org/abs).\none\ntwo\n[image: a cat]\n"} {
		if !strings.Contains(res.Content, want) {
			t.Errorf("page lacks %q:\n%s", want, res.Content)
		}
	}
	for _, not := range []string{"do-not-show", "color:red", "enable js", "<p>"} {
		if strings.Contains(res.Content, not) {
			t.Errorf("page shows %q:\n%s", not, res.Content)
		}
	}

	res = fetch(t, tool, map[string]any{"url": base + "/hop"})
	if res.IsError || !strings.Contains(res.Content, "url: "+base+"/json\n") || !strings.HasSuffix(res.Content, "\n"+`{"a": [1, 2, 3]}`) {
		t.Fatalf("redirect to json: %q", res.Content)
	}
	res = fetch(t, tool, map[string]any{"url": base + "/big"})
	if res.IsError || !strings.Contains(res.Content, "[the response is longer than 4096 bytes; only its start was read]") || strings.Count(res.Content, "0123456789") != 409 {
		t.Fatalf("big: %q", res.Content)
	}
	res = fetch(t, tool, map[string]any{"url": base + "/bin"})
	if res.IsError || !strings.Contains(res.Content, "[binary content of 5 bytes not shown]") {
		t.Fatalf("bin: %q", res.Content)
	}
	res = fetch(t, tool, map[string]any{"url": base + "/missing"})
	if !res.IsError || !strings.HasPrefix(res.Content, "status: 404 Not Found\n") {
		t.Fatalf("missing: %+v", res)
	}
	res = fetch(t, tool, map[string]any{"url": base + "/loop"})
	if !res.IsError || !strings.Contains(res.Content, "stopped after 5 redirects") {
		t.Fatalf("loop: %+v", res)
	}
	res = fetch(t, tool, map[string]any{"url": base + "/post", "method": "POST", "body": `{"q":1}`, "headers": map[string]string{"content-type": "application/json"}})
	if res.IsError || !strings.HasSuffix(res.Content, `{"method":"POST"}`) {
		t.Fatalf("post: %q", res.Content)
	}
	mu.Lock()
	if gotPost.ctype != "application/json" || gotPost.body != `{"q":1}` {
		t.Errorf("server got %+v", gotPost)
	}
	mu.Unlock()
	for _, c := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"url": base + "/post", "method": "POST", "headers": map[string]string{"Authorization": "Bearer x"}}, `header "Authorization" may not be set`},
		{map[string]any{"url": base + "/post", "headers": map[string]string{"Host": "evil"}}, `header "Host" may not be set`},
		{map[string]any{"url": base + "/post", "headers": map[string]string{"Accept": "a\r\nX-Evil: 1"}}, "line break"},
		{map[string]any{"url": base + "/post", "body": "x"}, "only sent with POST"},
		{map[string]any{"url": "http:///nohost"}, "no host"},
	} {
		if res := fetch(t, tool, c.args); !res.IsError || !strings.Contains(res.Content, c.want) {
			t.Errorf("%v: %+v, want %q", c.args, res, c.want)
		}
	}
	mu.Lock()
	if gotPost.auth {
		t.Error("an Authorization header reached the server")
	}
	mu.Unlock()

	// Another port on the same loopback address is not allowed.
	other, otherLn := countedServer(t, http.NotFoundHandler())
	res = fetch(t, tool, map[string]any{"url": other.URL})
	if !res.IsError || !strings.Contains(res.Content, "loopback") || otherLn.accepts.Load() != 0 {
		t.Fatalf("non-allow-listed loopback port: %+v, %d accepts", res, otherLn.accepts.Load())
	}
}

// TestHTTPFetchIgnoresProxyEnv: a proxy from the environment would dial for
// us and hide the real destination from the check.
func TestHTTPFetchIgnoresProxyEnv(t *testing.T) {
	proxy, proxyLn := countedServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "proxied")
	}))
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"} {
		t.Setenv(k, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	var dl dialLog
	tool, err := NewHTTPFetch(FetchConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tool.afterCheck = dl.hook()
	res := fetch(t, tool, map[string]any{"url": "http://93.184.215.14/"})
	if !res.IsError || strings.Contains(res.Content, "proxied") || proxyLn.accepts.Load() != 0 {
		t.Fatalf("went through the proxy: %+v, %d accepts", res, proxyLn.accepts.Load())
	}
	if got := dl.list(); len(got) != 1 || got[0].String() != "93.184.215.14:80" {
		t.Fatalf("dials: %v, want the destination itself", got)
	}
}

func TestFetchAllowList(t *testing.T) {
	a, err := parseFetchAllow([]string{"Intranet.Example", "*.corp.example", "api.local:8443", "10.1.0.0/16", "192.168.5.5", "127.0.0.1:9999", "[::1]:8080"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		host, port string
		want       bool
	}{
		{"intranet.example", "80", true}, {"INTRANET.EXAMPLE.", "443", true}, {"x.intranet.example", "80", false},
		{"a.corp.example", "80", true}, {"corp.example", "80", false}, {"api.local", "8443", true}, {"api.local", "80", false},
	} {
		if got := a.host(c.host, c.port); got != c.want {
			t.Errorf("host(%s, %s) = %v", c.host, c.port, got)
		}
	}
	for _, c := range []struct {
		ap   string
		want bool
	}{
		{"10.1.2.3:80", true}, {"10.2.0.1:80", false}, {"192.168.5.5:1", true}, {"[::ffff:192.168.5.5]:1", true},
		{"127.0.0.1:9999", true}, {"127.0.0.1:9998", false}, {"[::1]:8080", true}, {"[::1]:8081", false},
	} {
		if got := a.addr(netip.MustParseAddrPort(c.ap)); got != c.want {
			t.Errorf("addr(%s) = %v", c.ap, got)
		}
	}
	for _, bad := range []string{"http://x", "a b", "host:0", "host:99999", "*."} {
		if _, err := parseFetchAllow([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestBlockedAddr(t *testing.T) {
	blocked := []string{"127.0.0.1", "127.255.255.254", "10.0.0.1", "172.31.255.255", "192.168.0.1", "169.254.169.254",
		"100.64.0.1", "100.127.255.255", "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1",
		"192.0.2.1", "198.18.0.1", "::", "::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1",
		"64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "2002:c0a8:101::", "2001::1", "2001:db8::1", "fc00::1", "fd00:ec2::254",
		"fe80::1", "fe80::1%eth0", "fec0::1", "ff02::1", "100::1", "64:ff9b:1::1"}
	for _, s := range blocked {
		if BlockedAddr(netip.MustParseAddr(s)) == "" {
			t.Errorf("%s is not blocked", s)
		}
	}
	public := []string{"93.184.215.14", "8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.0", "172.32.0.1", "2606:4700::1111",
		"::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "223.255.255.255"}
	for _, s := range public {
		if why := BlockedAddr(netip.MustParseAddr(s)); why != "" {
			t.Errorf("%s is blocked: %s", s, why)
		}
	}
	if BlockedAddr(netip.Addr{}) == "" {
		t.Error("the zero Addr is not blocked")
	}
}

func TestParseIPv4Number(t *testing.T) {
	for in, want := range map[string]string{
		"2130706433": "127.0.0.1", "0x7f000001": "127.0.0.1", "0x7f.1": "127.0.0.1", "0177.0.0.1": "127.0.0.1",
		"127.1": "127.0.0.1", "127.0.1": "127.0.0.1", "0": "0.0.0.0", "017700000001": "127.0.0.1",
		"169.254.43518": "169.254.169.254", "0xa9fea9fe": "169.254.169.254", "1.2.3.4.": "1.2.3.4", "0x": "0.0.0.0",
	} {
		got, ok := ParseIPv4Number(in)
		if !ok || got.String() != want {
			t.Errorf("ParseIPv4Number(%q) = %v, %v; want %s", in, got, ok, want)
		}
	}
	for _, in := range []string{"example.com", "1.2.3.4.5", "256.1.1.1", "1.2.3.256", "4294967296", "08", "0x1g", "", "1..2", "a.1"} {
		if got, ok := ParseIPv4Number(in); ok {
			t.Errorf("ParseIPv4Number(%q) = %v, want not a number", in, got)
		}
	}
}

// FuzzFetchURL: for any URL, if the tool's own parsing accepts it and its
// host is an address in any spelling, a blocked address is never judged
// allowed; and the classifier never calls an address in a blocked range
// public, in any IPv6 wrapping.
func FuzzFetchURL(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1/", "http://2130706433/", "http://0x7f.1/", "http://[::ffff:127.0.0.1]/",
		"http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/", "http://169.254.169.254/", "http://example.com@127.0.0.1/",
		"http://0177.1/", "http://[fe80::1%25lo]/", "https://example.com/", "http://93.184.215.14/", "http://1.2.3.4.5/"} {
		f.Add(s)
	}
	empty, _ := parseFetchAllow(nil)
	f.Fuzz(func(t *testing.T, raw string) {
		u, bad := checkFetchURL(raw)
		if bad != "" {
			return
		}
		host := u.Hostname()
		ip, err := netip.ParseAddr(host)
		if err != nil {
			var ok bool
			if ip, ok = ParseIPv4Number(host); !ok {
				return
			}
		}
		why := BlockedAddr(ip)
		if lit := literalBlocked(u, empty); (why == "") != (lit == "") {
			t.Fatalf("%q: literalBlocked %q but BlockedAddr %q", raw, lit, why)
		}
		if why == "" {
			v4 := ip.Unmap()
			for _, p := range blockedPrefixes {
				if p.prefix.Contains(v4) {
					t.Fatalf("%q: %s is in %s but judged public", raw, ip, p.prefix)
				}
			}
		}
		// Wrapped in IPv4-mapped IPv6, an IPv4 address is judged the same.
		if ip.Is4() {
			mapped := netip.AddrFrom16(ip.As16())
			if (BlockedAddr(mapped) == "") != (why == "") {
				t.Fatalf("%s and %s judged differently", ip, mapped)
			}
		}
	})
}
