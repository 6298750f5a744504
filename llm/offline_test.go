package llm_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
)

func specs(names ...string) []llm.ToolSpec {
	out := make([]llm.ToolSpec, len(names))
	for i, n := range names {
		out[i] = llm.ToolSpec{Name: n, Parameters: []byte(`{"type":"object"}`)}
	}
	return out
}

var allTools = specs("read_file", "export_trace", "memory_write", "memory_search", "echo")

func TestOfflineToolRules(t *testing.T) {
	tests := []struct {
		name, text, tool, args string
	}{
		{"directive", `please /tool echo {"text": "hi", "n": 2} thanks`, "echo", `{"text":"hi","n":2}`},
		{"directive without json", "/tool export_trace", "export_trace", "{}"},
		{"directive with invalid json", "/tool echo {not json", "echo", "{not json"},
		{"read file", "Read file notes/todo.txt please", "read_file", `{"path":"notes/todo.txt"}`},
		{"read the file", "could you read the file main.go?", "read_file", `{"path":"main.go"}`},
		{"open file", "open file ./config/app.yaml.", "read_file", `{"path":"./config/app.yaml"}`},
		{"show me", "show me README.md", "read_file", `{"path":"README.md"}`},
		{"show me the", "Show me the file docs/x.md, or show me the README.md", "read_file", `{"path":"docs/x.md"}`},
		{"second mention", "show me the way and then read file go.mod", "read_file", `{"path":"go.mod"}`},
		{"show me quoted", `show me "docs/a b.md"`, "read_file", `{"path":"docs/a b.md"}`},
		{"export trace", "Export the trace now", "export_trace", "{}"},
		{"export trace short", "export trace", "export_trace", "{}"},
		{"remember", "Remember that my favourite colour is blue.", "memory_write", `{"text":"my favourite colour is blue","type":"episodic"}`},
		{"could you remember", "Could you remember that I prefer tea", "memory_write", `{"text":"I prefer tea","type":"episodic"}`},
		{"recall", "What do you remember about my favourite colour?", "memory_search", `{"query":"my favourite colour"}`},
	}
	o := llm.NewOffline()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := llm.Request{Tools: allTools, Messages: []llm.Message{
				{Role: llm.RoleSystem, Content: "system prompt"},
				{Role: llm.RoleUser, Content: tt.text},
			}}
			tokens := 0
			resp, err := o.Complete(context.Background(), req, func(string) { tokens++ })
			if err != nil {
				t.Fatal(err)
			}
			want := []llm.ToolCall{{ID: "call_1", Name: tt.tool, Arguments: tt.args}}
			if !reflect.DeepEqual(resp.ToolCalls, want) {
				t.Fatalf("ToolCalls = %+v, want %+v (content %q)", resp.ToolCalls, want, resp.Content)
			}
			if resp.FinishReason != "tool_calls" || resp.Content != "" || tokens != 0 {
				t.Errorf("finish %q content %q tokens %d", resp.FinishReason, resp.Content, tokens)
			}
			if resp.Model != llm.OfflineModel || resp.Usage.TotalTokens == 0 {
				t.Errorf("model %q usage %+v", resp.Model, resp.Usage)
			}
		})
	}
}

func TestOfflineToolsOnlyWhenOffered(t *testing.T) {
	o := llm.NewOffline()
	for _, text := range []string{
		"/tool read_file {}", "read file a.txt", "export trace",
		"remember that x is y", "what do you remember about x?",
	} {
		for _, tools := range [][]llm.ToolSpec{nil, specs("something_else")} {
			resp, err := o.Complete(context.Background(), llm.Request{Tools: tools,
				Messages: []llm.Message{{Role: llm.RoleUser, Content: text}}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.ToolCalls) != 0 || !strings.HasPrefix(resp.Content, "(offline demo model)") {
				t.Errorf("%q with tools %v: %+v", text, tools, resp)
			}
		}
	}
	resp, _ := o.Complete(context.Background(), llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "/tool nope {}"}}}, nil)
	if !strings.Contains(resp.Content, `"nope", but it is not available`) {
		t.Errorf("content = %q", resp.Content)
	}
}

func TestOfflineNoToolForNonPaths(t *testing.T) {
	o := llm.NewOffline()
	for _, text := range []string{"show me the weather", "read file", "do you remember that song?", "Did you remember that?"} {
		resp, err := o.Complete(context.Background(), llm.Request{Tools: allTools,
			Messages: []llm.Message{{Role: llm.RoleUser, Content: text}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.ToolCalls) != 0 {
			t.Errorf("%q: unexpected tool call %+v", text, resp.ToolCalls)
		}
	}
}

func TestOfflineSummarizesToolResults(t *testing.T) {
	o := llm.NewOffline()
	long := strings.Repeat("x", 500)
	base := []llm.Message{
		{Role: llm.RoleUser, Content: "read file a.txt"},
		{Role: llm.RoleAssistant, ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "read_file", Arguments: `{"path":"a.txt"}`}}},
	}
	tests := []struct {
		result llm.Message
		want   string
	}{
		{llm.Message{Role: llm.RoleTool, ToolCallID: "call_1", Content: "hello world"}, "I called read_file and got: hello world"},
		{llm.Message{Role: llm.RoleTool, ToolCallID: "call_1", Name: "named", Content: "ok"}, "I called named and got: ok"},
		{llm.Message{Role: llm.RoleTool, ToolCallID: "call_1", Content: "error: no such file"}, "I called read_file but it failed: error: no such file"},
		{llm.Message{Role: llm.RoleTool, ToolCallID: "call_1", Content: `{"error":"denied"}`}, `I called read_file but it failed: {"error":"denied"}`},
		{llm.Message{Role: llm.RoleTool, ToolCallID: "call_1", Content: long}, "I called read_file and got: " + long[:300] + "…"},
		{llm.Message{Role: llm.RoleTool, ToolCallID: "call_1"}, "I called read_file and got an empty result."},
	}
	for _, tt := range tests {
		msgs := append(append([]llm.Message(nil), base...), tt.result)
		var streamed strings.Builder
		resp, err := o.Complete(context.Background(), llm.Request{Tools: allTools, Messages: msgs}, func(d string) { streamed.WriteString(d) })
		if err != nil {
			t.Fatal(err)
		}
		if resp.Content != tt.want || streamed.String() != tt.want || len(resp.ToolCalls) != 0 || resp.FinishReason != "stop" {
			t.Errorf("got %q (streamed %q), want %q", resp.Content, streamed.String(), tt.want)
		}
	}
}

func TestOfflineTextAnswerAndHistory(t *testing.T) {
	o := llm.NewOffline()
	resp, err := o.Complete(context.Background(), llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: "hello there"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := `(offline demo model) You said: "hello there".`; resp.Content != want {
		t.Errorf("Content = %q, want %q", resp.Content, want)
	}
	if resp.Usage.PromptTokens != 2 || resp.Usage.CompletionTokens != 7 || resp.Usage.TotalTokens != 9 {
		t.Errorf("Usage = %+v", resp.Usage)
	}

	resp, _ = o.Complete(context.Background(), llm.Request{Messages: []llm.Message{
		{Role: llm.RoleUser, Content: "first"},
		{Role: llm.RoleAssistant, Content: "a"},
		{Role: llm.RoleUser, Content: "second"},
		{Role: llm.RoleAssistant, Content: "b"},
		{Role: llm.RoleUser, Content: "third"},
	}}, nil)
	if !strings.Contains(resp.Content, `I remember 2 earlier turns of this session; the last one was: "second".`) {
		t.Errorf("Content = %q", resp.Content)
	}
}

func TestOfflineDeterministicAndStreamsWords(t *testing.T) {
	o := llm.NewOffline()
	req := llm.Request{Tools: allTools, Messages: []llm.Message{{Role: llm.RoleUser, Content: "tell me  something\nnice"}}}
	var first []string
	r1, err := o.Complete(context.Background(), req, func(d string) { first = append(first, d) })
	if err != nil {
		t.Fatal(err)
	}
	var second []string
	r2, _ := o.Complete(context.Background(), req, func(d string) { second = append(second, d) })
	if !reflect.DeepEqual(r1, r2) || !reflect.DeepEqual(first, second) {
		t.Errorf("not deterministic:\n%+v\n%+v", r1, r2)
	}
	if strings.Join(first, "") != r1.Content || len(first) != len(strings.Fields(r1.Content)) {
		t.Errorf("tokens %q do not split %q by words", first, r1.Content)
	}
	for _, tok := range first[1:] {
		if strings.HasPrefix(tok, " ") {
			t.Errorf("token %q starts with a space", tok)
		}
	}
}

func TestOfflineCallIDsFollowSteps(t *testing.T) {
	o := llm.NewOffline()
	resp, _ := o.Complete(context.Background(), llm.Request{Tools: allTools, Messages: []llm.Message{
		{Role: llm.RoleUser, Content: "hi"},
		{Role: llm.RoleAssistant, Content: "hello"},
		{Role: llm.RoleUser, Content: "export trace"},
	}}, nil)
	if len(resp.ToolCalls) != 1 || resp.ToolCalls[0].ID != "call_2" {
		t.Errorf("ToolCalls = %+v", resp.ToolCalls)
	}
}

func TestOfflineCancel(t *testing.T) {
	o := &llm.Offline{TokenDelay: 20 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	start := time.Now()
	_, err := o.Complete(ctx, llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: strings.Repeat("w ", 100)}}}, func(string) {
		n++
		if n == 3 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || n != 3 {
		t.Errorf("err %v after %d tokens", err, n)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	if _, err := o.Complete(ctx, llm.Request{}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: err = %v", err)
	}
}

func ExampleOffline() {
	model := llm.NewOffline()
	ctx := context.Background()
	req := llm.Request{
		Messages: []llm.Message{{Role: llm.RoleUser, Content: "read the file notes.txt"}},
		Tools:    []llm.ToolSpec{{Name: "read_file", Parameters: []byte(`{"type":"object"}`)}},
	}

	// The model asks for the tool.
	resp, _ := model.Complete(ctx, req, nil)
	call := resp.ToolCalls[0]
	fmt.Println(call.ID, call.Name, call.Arguments)

	// The tool's result goes back; the model summarizes it, word by word.
	req.Messages = append(req.Messages,
		llm.Message{Role: llm.RoleAssistant, ToolCalls: resp.ToolCalls},
		llm.Message{Role: llm.RoleTool, ToolCallID: call.ID, Content: "buy milk"})
	var words []string
	resp, _ = model.Complete(ctx, req, func(d string) { words = append(words, d) })
	fmt.Println(resp.Content)
	fmt.Printf("%q\n", words[:3])

	// Anything else is echoed.
	req.Messages = append(req.Messages,
		llm.Message{Role: llm.RoleAssistant, Content: resp.Content},
		llm.Message{Role: llm.RoleUser, Content: "thanks!"})
	resp, _ = model.Complete(ctx, req, nil)
	fmt.Println(resp.Content)
	// Output:
	// call_1 read_file {"path":"notes.txt"}
	// I called read_file and got: buy milk
	// ["I " "called " "read_file "]
	// (offline demo model) You said: "thanks!". I remember 1 earlier turn of this session; the last one was: "read the file notes.txt".
}

func TestOfflineTeamReplies(t *testing.T) {
	o := llm.NewOffline()
	ask := func(text string) string {
		t.Helper()
		resp, err := o.Complete(t.Context(), llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: text}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Content
	}
	member := ask("Team task from the group \"Launch 发布\": Pick a day\n\nYou work on it as the team's Critic 评审. Finds flaws.\n\nWork of your teammates so far:\n- Researcher (ada): looks fine\n\nAnswer with your proposal.")
	if !strings.HasPrefix(member, `Proposal from the Critic 评审 on "Pick a day"`) || !strings.Contains(member, "builds on the work of Researcher") {
		t.Fatalf("member reply: %q", member)
	}
	lead := ask("Team task from the group \"Launch\": Pick a day\n\nProposals of the team:\n- Researcher (ada): yes\n- Critic (ben) produced no proposal (failed)\n\nYou are the lead (Lead). Weigh the proposals.")
	if !strings.HasPrefix(lead, `Decision on "Pick a day"`) || !strings.Contains(lead, "2 proposal(s) from Researcher, Critic") {
		t.Fatalf("lead reply: %q", lead)
	}
	if plain := ask("Team task, but not from a group"); strings.HasPrefix(plain, "Proposal") || strings.HasPrefix(plain, "Decision") {
		t.Fatalf("a plain message got a team reply: %q", plain)
	}
}
