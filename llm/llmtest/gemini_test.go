package llmtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
)

func geminiPost(t *testing.T, url, key, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("x-goog-api-key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

func TestGeminiServerRawWireFormat(t *testing.T) {
	srv := llmtest.NewGeminiServer(t, llmtest.WithGeminiAPIKey("k"))
	body := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"systemInstruction":{"parts":[{"text":"be brief"}]}}`

	srv.Enqueue(llmtest.Reply{Text: "abcdef", ChunkSize: 2, ToolCalls: []llm.ToolCall{{Name: "t", Arguments: `{"x":1}`}}})
	resp, raw := geminiPost(t, srv.URL()+"v1beta/models/gemini-x:streamGenerateContent?alt=sse", "k", body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	blocks := strings.Split(strings.TrimSpace(raw), "\r\n\r\n")
	if len(blocks) != 4 { // three text chunks, one function call chunk
		t.Fatalf("%d events:\n%s", len(blocks), raw)
	}
	var last struct {
		Candidates []struct {
			Content struct {
				Role  string `json:"role"`
				Parts []struct {
					FunctionCall *struct {
						Name string         `json:"name"`
						Args map[string]any `json:"args"`
					} `json:"functionCall"`
				} `json:"parts"`
			} `json:"content"`
			FinishReason string `json:"finishReason"`
		} `json:"candidates"`
		UsageMetadata *struct {
			TotalTokenCount int `json:"totalTokenCount"`
		} `json:"usageMetadata"`
		ModelVersion string `json:"modelVersion"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(blocks[3], "data: ")), &last); err != nil {
		t.Fatal(err)
	}
	c := last.Candidates[0]
	if c.FinishReason != "STOP" || c.Content.Role != "model" || c.Content.Parts[0].FunctionCall.Name != "t" ||
		c.Content.Parts[0].FunctionCall.Args["x"] != 1.0 || last.UsageMetadata == nil || last.ModelVersion != "gemini-x" {
		t.Errorf("last event %s", blocks[3])
	}
	if !strings.HasPrefix(blocks[0], `data: {"candidates":[{"content":{"role":"model","parts":[{"text":"ab"}]}`) {
		t.Errorf("first event %s", blocks[0])
	}
	r := srv.Requests()[0]
	if r.Model != "gemini-x" || !r.Stream || r.SystemInstruction != "be brief" || r.LastUserText() != "hi" {
		t.Errorf("decoded %+v", r)
	}

	// generateContent answers one JSON object.
	resp, raw = geminiPost(t, srv.URL()+"v1beta/models/gemini-x:generateContent", "k", body)
	if resp.StatusCode != 200 || !strings.Contains(raw, `"text":"echo: hi"`) || !strings.Contains(raw, `"finishReason":"STOP"`) {
		t.Errorf("generateContent %d %s", resp.StatusCode, raw)
	}

	// Google's error shapes.
	for _, tc := range []struct {
		path, key, body string
		status          int
		want            string
	}{
		{"v1beta/models/gemini-x:generateContent", "bad", body, 400, `"reason":"API_KEY_INVALID"`},
		{"v1beta/models/gemini-x:countTokens", "k", body, 404, `"status":"NOT_FOUND"`},
		{"v1beta/models/gemini-x:generateContent", "k", `{"contents":[]}`, 400, `"status":"INVALID_ARGUMENT"`},
		{"v1beta/models/gemini-x:generateContent", "k", `{`, 400, `"code":400`},
	} {
		resp, raw := geminiPost(t, srv.URL()+tc.path, tc.key, tc.body)
		if resp.StatusCode != tc.status || !strings.Contains(raw, tc.want) || !strings.Contains(raw, `{"error":{`) {
			t.Errorf("%s key %q body %q: %d %s", tc.path, tc.key, tc.body, resp.StatusCode, raw)
		}
	}
}
