package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

// /mcp, once mounted, is in the API document like the other public routes.
func TestOpenAPIDocumentsMCPServer(t *testing.T) {
	h := newHarness(t, "sqlite")
	h.api.MountMCPServer(http.NotFoundHandler())
	ops, err := Operations(servedDocument(t, h))
	if err != nil {
		t.Fatal(err)
	}
	if problems := routerMismatches(h.api.Engine(), ops); len(problems) > 0 {
		t.Fatalf("the document does not match the router:\n%s", strings.Join(problems, "\n"))
	}
	found := 0
	for _, o := range ops {
		if o.Path == MCPServerPath {
			found++
		}
	}
	if found != 3 {
		t.Fatalf("%d operations at %s, want POST, GET and DELETE", found, MCPServerPath)
	}
}
