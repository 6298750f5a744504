package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/openintern/openintern/store"
)

// style colours human output, but only on a terminal and never when NO_COLOR
// is set (https://no-color.org) or TERM is dumb: piped output stays plain.
type style struct{ on bool }

func newStyle(w io.Writer, lookupEnv func(string) (string, bool)) style {
	if _, ok := lookupEnv("NO_COLOR"); ok {
		return style{}
	}
	if term, _ := lookupEnv("TERM"); term == "dumb" {
		return style{}
	}
	return style{on: isTerminal(w)}
}

func (s style) wrap(code, text string) string {
	if !s.on || text == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

func (s style) dim(t string) string    { return s.wrap("2", t) }
func (s style) bold(t string) string   { return s.wrap("1", t) }
func (s style) red(t string) string    { return s.wrap("31", t) }
func (s style) green(t string) string  { return s.wrap("32", t) }
func (s style) yellow(t string) string { return s.wrap("33", t) }
func (s style) cyan(t string) string   { return s.wrap("36", t) }

// eventPayload holds the payload fields the CLI shows, across event types.
// Error is raw because it is a string on llm.called and an object on run.failed.
type eventPayload struct {
	Delta        string          `json:"delta"`
	Content      string          `json:"content"`
	Name         string          `json:"name"`
	Arguments    json.RawMessage `json:"arguments"`
	IsError      bool            `json:"is_error"`
	Outcome      string          `json:"outcome"`
	Reason       string          `json:"reason"`
	Output       string          `json:"output"`
	Input        string          `json:"input"`
	Error        json.RawMessage `json:"error"`
	Step         int             `json:"step"`
	Steps        int             `json:"steps"`
	Final        bool            `json:"final"`
	Provider     string          `json:"provider"`
	Model        string          `json:"model"`
	DurationMS   int64           `json:"duration_ms"`
	From         string          `json:"from"`
	To           string          `json:"to"`
	FromStep     int             `json:"from_step"`
	FinishReason string          `json:"finish_reason"`
	// Group runs (message.*, blackboard.written, a group's run.started).
	Role    string `json:"role"`
	Purpose string `json:"purpose"`
	Status  string `json:"status"`
	Kind    string `json:"kind"`
	Author  string `json:"author"`
	Text    string `json:"text"`
	Mode    string `json:"mode"`
	Lead    string `json:"lead"`
	Members []struct {
		AgentID string `json:"agent_id"`
		Role    string `json:"role"`
	} `json:"members"`
	ToolCalls []struct {
		Name string `json:"name"`
	} `json:"tool_calls"`
	Usage *store.Usage `json:"usage"`
}

func payloadFields(ev store.Event) eventPayload {
	var p eventPayload
	// A payload this CLI does not understand is shown by type alone.
	_ = json.Unmarshal(ev.Payload, &p)
	return p
}

// errorText renders the payload's error, string or {code,message}.
func (p eventPayload) errorText() string {
	if len(p.Error) == 0 || string(p.Error) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(p.Error, &s) == nil {
		return s
	}
	var re store.RunError
	if json.Unmarshal(p.Error, &re) == nil && (re.Code != "" || re.Message != "") {
		return runErrorText(&re)
	}
	return string(p.Error)
}

func runErrorText(re *store.RunError) string {
	switch {
	case re == nil:
		return ""
	case re.Code == "":
		return re.Message
	case re.Message == "":
		return re.Code
	}
	return re.Code + ": " + re.Message
}

// compactArgs renders tool arguments on one line.
func compactArgs(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return truncate(s, 160)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return truncate(string(raw), 160)
	}
	return truncate(buf.String(), 160)
}

// byteSize is a short human size: "120 bytes", "3.4 KB".
func byteSize(n int) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d bytes", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KB", float64(n)/1024)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}

// toolResultText is the short "← …" line of a tool result.
func toolResultText(p eventPayload) string {
	if p.IsError {
		return "error: " + truncate(p.Content, 120)
	}
	return byteSize(len(p.Content))
}

// eventSummary is one line describing a stored event, for tail and the
// markdown trace.
func eventSummary(ev store.Event) string {
	p := payloadFields(ev)
	switch ev.Type {
	case "run.started", "run.resumed":
		if ev.Type == "run.resumed" && p.FromStep > 0 {
			return fmt.Sprintf("resumed after step %d", p.FromStep)
		}
		if p.Mode != "" {
			return fmt.Sprintf("%s, lead %s: %s", p.Mode, p.Lead, truncate(p.Input, 100))
		}
		return "input: " + truncate(p.Input, 100)
	case "message.task":
		s := "to " + teamWho(p.To, p.Role)
		if p.Purpose != "" && p.Purpose != "work" {
			s += ": " + p.Purpose
		}
		return s
	case "message.proposal", "message.decision":
		return teamWho(p.From, p.Role) + ": " + truncate(p.Content, 100)
	case "message.status":
		s := teamWho(p.From, p.Role) + " " + p.Status
		if e := p.errorText(); e != "" {
			s += ": " + truncate(e, 100)
		}
		return s
	case "message.evidence":
		return teamWho(p.From, p.Role) + " " + p.Kind + ": " + truncate(p.Content, 100)
	case "blackboard.written":
		return p.Kind + " by " + p.Author + ": " + truncate(p.Text, 100)
	case "step.started":
		return fmt.Sprintf("step %d", p.Step)
	case "step.completed":
		if p.Final {
			return fmt.Sprintf("step %d (final answer)", p.Step)
		}
		return fmt.Sprintf("step %d", p.Step)
	case "llm.called":
		head := strings.TrimSpace(p.Provider + " " + p.Model)
		if p.DurationMS > 0 {
			head += fmt.Sprintf(" %dms", p.DurationMS)
		}
		if e := p.errorText(); e != "" {
			return head + " error: " + truncate(e, 100)
		}
		if len(p.ToolCalls) > 0 {
			names := make([]string, len(p.ToolCalls))
			for i, tc := range p.ToolCalls {
				names[i] = tc.Name
			}
			return head + " → " + strings.Join(names, ", ")
		}
		return head + ": " + truncate(p.Content, 100)
	case "llm.token":
		return fmt.Sprintf("%q", p.Delta)
	case "tool.called":
		return "→ " + p.Name + " " + compactArgs(p.Arguments)
	case "tool.result":
		return "← " + p.Name + " " + toolResultText(p)
	case "tool.blocked":
		return p.Name + " blocked: " + truncate(p.Reason, 100)
	case "run.completed":
		return plural(p.Steps, "step") + ": " + truncate(p.Output, 100)
	case "run.failed", "run.cancelled":
		return p.errorText()
	case "agent.state_changed":
		s := p.From + " → " + p.To
		if p.Reason != "" {
			s += " (" + p.Reason + ")"
		}
		return s
	}
	return truncate(string(ev.Payload), 100)
}

// statusLine is the last line of `run --stream` and `run --wait`.
func statusLine(st style, run store.Run, elapsed time.Duration) string {
	return statusLineOf(st, run, elapsed, "step")
}

// statusLineOf is statusLine counting run.Steps in unit ("": not shown, as
// for a group run, whose steps are its members' results).
func statusLineOf(st style, run store.Run, elapsed time.Duration, unit string) string {
	var details []string
	if unit != "" {
		details = append(details, plural(run.Steps, unit))
	}
	if run.Usage.TotalTokens > 0 {
		details = append(details, plural(run.Usage.TotalTokens, "token"))
	}
	if elapsed >= 100*time.Millisecond {
		details = append(details, elapsed.Round(100*time.Millisecond).String())
	}
	tail := st.dim(" · " + strings.Join(append(details, run.ID), " · "))
	switch run.Status {
	case store.RunCompleted:
		return st.green("✓ completed") + tail
	case store.RunFailed:
		return st.red("✗ failed: "+runErrorText(run.Error)) + tail
	case store.RunCancelled:
		return st.yellow("✗ cancelled") + tail
	}
	return st.yellow("… "+run.Status) + tail
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// teamWho names a group member: "critic (critic)", or the id alone without a role.
func teamWho(agentID, role string) string {
	if role == "" {
		return agentID
	}
	return agentID + " (" + role + ")"
}
