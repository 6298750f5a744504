package llm

import "net/http"

// maxIdleConnsPerHost is how many idle connections a provider keeps to its
// endpoint. Go's default (2) makes every call beyond two at once dial and
// (over HTTPS) handshake again: with 16 agents calling one model, the
// daemon's bench spent more CPU opening and closing connections than on
// the calls' JSON. A daemon's agents call a handful of hosts, so keeping
// one connection per call in flight costs little.
const maxIdleConnsPerHost = 128

// NewHTTPClient is the client a provider uses when none is configured (and
// the daemon's embedder): the default transport's settings (proxy from the
// environment, timeouts, HTTP/2) with connections kept for reuse as above.
func NewHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 4 * maxIdleConnsPerHost
	tr.MaxIdleConnsPerHost = maxIdleConnsPerHost
	return &http.Client{Transport: tr}
}
