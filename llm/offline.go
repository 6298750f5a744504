package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
)

// OfflineModel is the model name the offline provider reports.
const OfflineModel = "offline-demo"

// Offline is the offline demo model: a deterministic stand-in for a language
// model that needs no network or API key. It answers from fixed rules applied
// to the conversation, so a daemon without credentials still runs agents,
// calls tools and streams tokens end to end:
//
//   - when the last message is a tool result it summarizes it
//     ("I called read_file and got: ...");
//   - otherwise, for the last user message, and only for tools offered in the
//     request: "/tool NAME {json}" calls NAME with that JSON; "read file X",
//     "read the file X", "open file X" or "show me X" (X a path, i.e. with a
//     dot or slash) calls read_file; "export trace" calls export_trace;
//     "what do you remember about X" calls memory_search; "remember that X"
//     calls memory_write;
//   - anything else gets a text reply quoting the message and mentioning how
//     many earlier turns of the session it sees.
//
// Text is streamed word by word. Usage counts words. It is safe for
// concurrent use.
type Offline struct {
	// TokenDelay is slept between streamed words (zero: no delay), for demos.
	TokenDelay time.Duration
}

var _ Provider = (*Offline)(nil)

// NewOffline returns the offline demo model without token delay.
func NewOffline() *Offline { return &Offline{} }

// Name reports "offline".
func (o *Offline) Name() string { return "offline" }

var (
	reToolDirective = regexp.MustCompile(`/tool\s+([A-Za-z0-9_.:-]+)`)
	reReadFile      = regexp.MustCompile(`(?i)\b(?:(?:read|open)\s+(?:the\s+)?file|show\s+me(?:\s+the)?(?:\s+file)?)\s+("[^"]+"|'[^']+'|` + "`[^`]+`" + `|\S+)`)
	reExportTrace   = regexp.MustCompile(`(?i)\bexport\s+(?:the\s+)?trace\b`)
	reMemorySearch  = regexp.MustCompile(`(?i)\bwhat\s+do\s+you\s+remember\s+about\s+([^\n]+)`)
	reMemoryWrite   = regexp.MustCompile(`(?i)\bremember\s+that\s+([^\n]+)`)
)

// Complete implements Provider.
func (o *Offline) Complete(ctx context.Context, req Request, onToken TokenFunc) (Response, error) {
	if err := ctx.Err(); err != nil {
		return Response{}, fmt.Errorf("llm: offline: %w", err)
	}
	resp := Response{Model: OfflineModel, FinishReason: "stop"}
	resp.Usage.PromptTokens = promptWords(req.Messages)

	text, call := o.decide(req)
	if call != nil {
		resp.ToolCalls = []ToolCall{*call}
		resp.FinishReason = "tool_calls"
		resp.Usage.CompletionTokens = 1 + countWords(call.Arguments)
		resp.Usage.TotalTokens = resp.Usage.PromptTokens + resp.Usage.CompletionTokens
		return resp, nil
	}

	var sent strings.Builder
	for i, tok := range splitWords(text) {
		if i > 0 && o.TokenDelay > 0 {
			t := time.NewTimer(o.TokenDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return Response{}, fmt.Errorf("llm: offline: %w", ctx.Err())
			case <-t.C:
			}
		}
		if err := ctx.Err(); err != nil {
			return Response{}, fmt.Errorf("llm: offline: %w", err)
		}
		sent.WriteString(tok)
		if onToken != nil {
			onToken(tok)
		}
	}
	resp.Content = sent.String()
	resp.Usage.CompletionTokens = countWords(resp.Content)
	resp.Usage.TotalTokens = resp.Usage.PromptTokens + resp.Usage.CompletionTokens
	return resp, nil
}

// decide returns either the reply text or a tool call.
func (o *Offline) decide(req Request) (string, *ToolCall) {
	msgs := req.Messages
	if n := len(msgs); n > 0 && msgs[n-1].Role == RoleTool {
		return summarizeToolResults(msgs), nil
	}

	last := -1
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == RoleUser {
			last = i
			break
		}
	}
	if last < 0 {
		return "(offline demo model) Hello! There is no user message for me to answer yet.", nil
	}
	text := msgs[last].Content
	offered := func(name string) bool {
		for _, t := range req.Tools {
			if t.Name == name {
				return true
			}
		}
		return false
	}
	callID := fmt.Sprintf("call_%d", countRole(msgs, RoleAssistant)+1)
	mkCall := func(name string, args any) *ToolCall {
		var s string
		switch a := args.(type) {
		case string:
			s = a
		default:
			b, _ := json.Marshal(a) // maps and structs of strings always encode
			s = string(b)
		}
		return &ToolCall{ID: callID, Name: name, Arguments: s}
	}

	var unavailable string
	if m := reToolDirective.FindStringSubmatchIndex(text); m != nil {
		name := text[m[2]:m[3]]
		if offered(name) {
			return "", mkCall(name, directiveArgs(text[m[1]:]))
		}
		unavailable = name
	}
	if offered("read_file") {
		for _, m := range reReadFile.FindAllStringSubmatch(text, -1) {
			if p := cleanPath(m[1]); strings.ContainsAny(p, "./") {
				return "", mkCall("read_file", map[string]string{"path": p})
			}
		}
	}
	if reExportTrace.MatchString(text) && offered("export_trace") {
		return "", mkCall("export_trace", "{}")
	}
	if m := reMemorySearch.FindStringSubmatch(text); m != nil && offered("memory_search") {
		if q := cleanPhrase(m[1]); q != "" {
			return "", mkCall("memory_search", map[string]string{"query": q})
		}
	}
	if m := reMemoryWrite.FindStringSubmatchIndex(text); m != nil && offered("memory_write") {
		// "do you remember that ...?" is a question, not an instruction.
		before := strings.ToLower(strings.TrimSpace(text[:m[0]]))
		if !strings.HasSuffix(before, "do you") && !strings.HasSuffix(before, "did you") {
			if t := cleanPhrase(text[m[2]:m[3]]); t != "" {
				return "", mkCall("memory_write", struct {
					Text string `json:"text"`
					Type string `json:"type"`
				}{t, "episodic"})
			}
		}
	}
	if reply, ok := teamReply(text); ok {
		return reply, nil
	}
	return chatReply(msgs[:last], text, unavailable, req.Tools), nil
}

var (
	reTeamTask  = regexp.MustCompile(`^Team task from the group "((?:[^"\\]|\\.)*)": ([^\n]*)`)
	reTeamRole  = regexp.MustCompile(`You work on it as the team's ([^.\n]+)\.`)
	reTeamLead  = regexp.MustCompile(`You are the lead \(([^)\n]+)\)`)
	reTeamEntry = regexp.MustCompile(`(?m)^- ([^(\n]+) \(([a-z0-9_-]+)\)`)
)

// teamReply answers the tasks a group run gives its members and its lead
// with a short proposal or decision, so a team demo reads like one.
func teamReply(text string) (string, bool) {
	m := reTeamTask.FindStringSubmatch(text)
	if m == nil {
		return "", false
	}
	task := truncate(strings.TrimSpace(m[2]), 160)
	var roles []string
	for _, e := range reTeamEntry.FindAllStringSubmatch(text, -1) {
		roles = append(roles, strings.TrimSpace(e[1]))
	}
	if lead := reTeamLead.FindStringSubmatch(text); lead != nil {
		weighed := "no proposals"
		if len(roles) > 0 {
			weighed = fmt.Sprintf("%d proposal(s) from %s", len(roles), strings.Join(roles, ", "))
		}
		return fmt.Sprintf("Decision on %q: we go ahead, taking up the points raised; owners and a date follow on the blackboard. Weighed %s. (offline demo model)", task, weighed), true
	}
	role := "member"
	if r := reTeamRole.FindStringSubmatch(text); r != nil {
		role = strings.TrimSpace(r[1])
	}
	reply := fmt.Sprintf("Proposal from the %s on %q: it is feasible; I recommend going ahead once the main risk is written down.", role, task)
	if len(roles) > 0 {
		reply += fmt.Sprintf(" This builds on the work of %s.", strings.Join(roles, ", "))
	}
	return reply + " (offline demo model)", true
}

// chatReply is the text answer to a user message that triggers no tool.
func chatReply(earlier []Message, text, unavailable string, tools []ToolSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "(offline demo model) You said: %q.", truncate(strings.TrimSpace(text), 300))
	if unavailable != "" {
		fmt.Fprintf(&b, " You asked for the tool %q, but it is not available to me.", unavailable)
	}
	turns, prev := 0, ""
	for _, m := range earlier {
		if m.Role == RoleUser {
			turns++
			prev = m.Content
		}
	}
	switch {
	case turns > 0:
		s := "s"
		if turns == 1 {
			s = ""
		}
		fmt.Fprintf(&b, " I remember %d earlier turn%s of this session; the last one was: %q.",
			turns, s, truncate(strings.TrimSpace(prev), 80))
	case len(tools) > 0:
		names := make([]string, len(tools))
		for i, t := range tools {
			names[i] = t.Name
		}
		fmt.Fprintf(&b, " I can use these tools: %s. Try \"/tool <name> {json}\".", strings.Join(names, ", "))
	}
	return b.String()
}

// summarizeToolResults describes the tool results at the end of msgs.
func summarizeToolResults(msgs []Message) string {
	start := len(msgs)
	for start > 0 && msgs[start-1].Role == RoleTool {
		start--
	}
	parts := make([]string, 0, len(msgs)-start)
	for _, m := range msgs[start:] {
		name := toolNameOf(msgs[:start], m)
		content := strings.TrimSpace(m.Content)
		switch {
		case content == "":
			parts = append(parts, fmt.Sprintf("I called %s and got an empty result.", name))
		case looksLikeError(content):
			parts = append(parts, fmt.Sprintf("I called %s but it failed: %s", name, truncate(content, 300)))
		default:
			parts = append(parts, fmt.Sprintf("I called %s and got: %s", name, truncate(content, 300)))
		}
	}
	return strings.Join(parts, "\n")
}

// toolNameOf finds the name of the tool whose result m is.
func toolNameOf(before []Message, m Message) string {
	if m.Name != "" {
		return m.Name
	}
	for i := len(before) - 1; i >= 0; i-- {
		for _, tc := range before[i].ToolCalls {
			if tc.ID == m.ToolCallID && tc.Name != "" {
				return tc.Name
			}
		}
	}
	return "a tool"
}

// looksLikeError guesses whether a tool result reports a failure: Message has
// no error flag, so it looks for "error..." text or a JSON error field.
func looksLikeError(content string) bool {
	lower := strings.ToLower(content)
	if strings.HasPrefix(lower, "error") || strings.HasPrefix(lower, "tool error") {
		return true
	}
	if !strings.HasPrefix(content, "{") {
		return false
	}
	var obj struct {
		IsError bool            `json:"is_error"`
		Error   json.RawMessage `json:"error"`
	}
	if json.Unmarshal([]byte(content), &obj) != nil {
		return false
	}
	e := string(bytes.TrimSpace(obj.Error))
	return obj.IsError || (e != "" && e != "null" && e != `""` && e != "false")
}

// directiveArgs returns the JSON after "/tool NAME": a JSON value when it
// parses, the raw rest of the line when it starts like JSON but does not
// parse (the tool router then reports the invalid arguments), else "{}".
func directiveArgs(rest string) string {
	rest = strings.TrimLeft(rest, " \t")
	if !strings.HasPrefix(rest, "{") {
		return "{}"
	}
	var raw json.RawMessage
	if err := json.NewDecoder(strings.NewReader(rest)).Decode(&raw); err == nil {
		var buf bytes.Buffer
		if json.Compact(&buf, raw) == nil {
			return buf.String()
		}
	}
	line, _, _ := strings.Cut(rest, "\n")
	return strings.TrimSpace(line)
}

// cleanPath strips quotes and trailing sentence punctuation from a path.
func cleanPath(p string) string {
	p = strings.Trim(p, "\"'`")
	p = strings.TrimRight(p, ".,;:!?)\"'`")
	return strings.Trim(p, "\"'`(")
}

// cleanPhrase trims spaces, quotes and trailing sentence punctuation.
func cleanPhrase(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimRight(s, ".!?; ")
	return strings.TrimSpace(s)
}

// splitWords splits s into words each followed by its trailing spaces (the
// first also keeps leading spaces), so the pieces join back to s.
func splitWords(s string) []string {
	var out []string
	start := 0
	inSpace := true // leading spaces stay with the first word
	for i, r := range s {
		if unicode.IsSpace(r) {
			inSpace = true
			continue
		}
		if inSpace && i > start && strings.TrimSpace(s[start:i]) != "" {
			out = append(out, s[start:i])
			start = i
		}
		inSpace = false
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

func countWords(s string) int { return len(strings.Fields(s)) }

func countRole(msgs []Message, role string) int {
	n := 0
	for _, m := range msgs {
		if m.Role == role {
			n++
		}
	}
	return n
}

func promptWords(msgs []Message) int {
	n := 0
	for _, m := range msgs {
		n += countWords(m.Content)
		for _, tc := range m.ToolCalls {
			n += 1 + countWords(tc.Arguments)
		}
	}
	return n
}
