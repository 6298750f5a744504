package httpapi

import (
	"net/http"
	"testing"

	"github.com/openintern/openintern/llm"
)

// TestModelValidatedOnSave: agents and roles naming an unknown provider or
// model, or a provider without a key, are refused when saved.
func TestModelValidatedOnSave(t *testing.T) {
	router, err := llm.NewRouter(llm.RouterConfig{
		Default: llm.Config{Provider: "openai", APIKey: "sk", Model: "gpt-4o-mini"},
		Models:  map[string]llm.ModelEntry{"strong": {Provider: "openai", Model: "gpt-4.1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, "sqlite", func(d *Deps) { d.Models = router })
	for _, tc := range []struct {
		model, code string
	}{
		{"nosuch/model-x", "unknown_model"},
		{"anthropic/claude-sonnet-4-5", "model_unavailable"}, // no ANTHROPIC_API_KEY
	} {
		body := `{"agent_id":"a1","name":"A","model":"` + tc.model + `"}`
		h.wantError(http.StatusBadRequest, tc.code, request{method: "POST", path: "/api/agents", body: body})
		h.wantError(http.StatusBadRequest, tc.code, request{method: "POST", path: "/api/roles", body: `{"role_id":"r1","name":"R","model":"` + tc.model + `"}`})
	}
	for _, ok := range []string{"strong", "openai/gpt-4o", "gpt-4o"} {
		h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"name":"agent ` + ok + `","model":"` + ok + `"}`})
	}
	h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`})
	h.wantError(http.StatusBadRequest, "unknown_model", request{method: "PATCH", path: "/api/agents/a1", body: `{"model":"bogus/x"}`})
	h.must(http.StatusOK, request{method: "PATCH", path: "/api/agents/a1", body: `{"model":"strong"}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/roles", body: `{"role_id":"r1","name":"R","model":"strong"}`})
	h.wantError(http.StatusBadRequest, "model_unavailable", request{method: "PUT", path: "/api/roles/r1", body: `{"model":"anthropic/claude-x"}`})
}
