package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
)

// localModelName is the model name the spawned daemon is configured with;
// the local model answers to any name.
const localModelName = "bench-local"

// benchTool is the tool the local model calls: present on every daemon,
// cheap, and its error for a missing file is an ordinary tool result.
const benchTool = "read_file"

// nonceRE finds the nonce a bench turn's input carries.
var nonceRE = regexp.MustCompile(`nonce ([A-Za-z0-9_-]+)`)

// benchAnswer is what the local model answers to a turn carrying nonce, and
// what the bench checks the run's output against.
func benchAnswer(nonce string) string { return "nonce " + nonce }

// localModel is an instant OpenAI-compatible chat-completions server: it asks
// for toolCalls calls of read_file, then answers benchAnswer(nonce) for the
// nonce in the turn's input. It keeps no per-request state, so it costs the
// machine (which the daemon shares) as little as a model can.
type localModel struct {
	toolCalls int
	ln        net.Listener
	srv       *http.Server
	served    chan struct{}
	requests  atomic.Int64
}

// startLocalModel listens on addr ("127.0.0.1:0" for any free port).
func startLocalModel(addr string, toolCalls int) (*localModel, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("local model: listen on %s: %w", addr, err)
	}
	m := &localModel{toolCalls: toolCalls, ln: ln, served: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", m.complete)
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"`+localModelName+`","object":"model","owned_by":"openintern-bench"}]}`)
	})
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(m.served)
		_ = m.srv.Serve(ln) // ErrServerClosed after Close
	}()
	return m, nil
}

// URL is the API base URL, ending in /v1.
func (m *localModel) URL() string { return "http://" + m.ln.Addr().String() + "/v1" }

// Close stops the server and waits for its goroutine.
func (m *localModel) Close(ctx context.Context) error {
	err := m.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = m.srv.Close()
	}
	<-m.served
	return err
}

// chatRequest is the part of a chat-completions request the model reads.
type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	} `json:"tools"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// text decodes a message content: a string, null, or text parts.
func contentString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

// reply decides the answer: a tool call while the turn has made fewer than
// toolCalls (counted as tool results after the last user message), then text.
func (m *localModel) reply(req chatRequest) (text string, call *wireToolCall) {
	lastUser, results := -1, 0
	for i, msg := range req.Messages {
		switch msg.Role {
		case "user":
			lastUser, results = i, 0
		case "tool":
			results++
		}
	}
	offered := false
	for _, t := range req.Tools {
		offered = offered || t.Function.Name == benchTool
	}
	if results < m.toolCalls && offered {
		return "", &wireToolCall{ID: fmt.Sprintf("call_%d", results), Type: "function",
			Function: wireFunction{Name: benchTool, Arguments: fmt.Sprintf(`{"path":"bench-%d.txt"}`, results)}}
	}
	nonce := ""
	if lastUser >= 0 {
		if all := nonceRE.FindAllStringSubmatch(contentString(req.Messages[lastUser].Content), -1); len(all) > 0 {
			nonce = all[len(all)-1][1]
		}
	}
	return benchAnswer(nonce), nil
}

// Wire types of the answer (chat.completion and chat.completion.chunk).
type wireToolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function wireFunction `json:"function"`
}

type wireFunction struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type wireDelta struct {
	Role      string         `json:"role,omitempty"`
	Content   *string        `json:"content,omitempty"`
	ToolCalls []wireToolCall `json:"tool_calls,omitempty"`
}

type wireChoice struct {
	Index        int        `json:"index"`
	Delta        *wireDelta `json:"delta,omitempty"`
	Message      *wireDelta `json:"message,omitempty"`
	FinishReason *string    `json:"finish_reason"`
}

type wireUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type wireChunk struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []wireChoice `json:"choices"`
	Usage   *wireUsage   `json:"usage,omitempty"`
}

func (m *localModel) complete(w http.ResponseWriter, r *http.Request) {
	n := m.requests.Add(1)
	var req chatRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		msg, _ := json.Marshal(err.Error())
		_, _ = fmt.Fprintf(w, `{"error":{"message":%s,"type":"invalid_request_error","param":null,"code":null}}`, msg)
		return
	}
	text, call := m.reply(req)
	finish := "stop"
	if call != nil {
		finish = "tool_calls"
	}
	usage := &wireUsage{PromptTokens: len(req.Messages), CompletionTokens: 1 + len(text)/4}
	usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	base := wireChunk{ID: fmt.Sprintf("chatcmpl-bench-%d", n), Created: time.Now().Unix(), Model: req.Model}

	if !req.Stream {
		msg := &wireDelta{Role: "assistant"}
		if call != nil {
			msg.ToolCalls = []wireToolCall{*call}
		} else {
			msg.Content = &text
		}
		out := base
		out.Object = "chat.completion"
		out.Choices = []wireChoice{{Message: msg, FinishReason: &finish}}
		out.Usage = usage
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
		return
	}

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	send := func(delta *wireDelta, fr *string, u *wireUsage) {
		c := base
		c.Object = "chat.completion.chunk"
		c.Choices = []wireChoice{}
		if delta != nil {
			c.Choices = []wireChoice{{Delta: delta, FinishReason: fr}}
		}
		c.Usage = u
		raw, _ := json.Marshal(c) // our own types always encode
		_, _ = fmt.Fprintf(w, "data: %s\n\n", raw)
	}
	empty := ""
	send(&wireDelta{Role: "assistant", Content: &empty}, nil, nil)
	if call != nil {
		idx := 0
		head := wireToolCall{Index: &idx, ID: call.ID, Type: "function", Function: wireFunction{Name: call.Function.Name}}
		args := wireToolCall{Index: &idx, Function: wireFunction{Arguments: call.Function.Arguments}}
		send(&wireDelta{ToolCalls: []wireToolCall{head}}, nil, nil)
		send(&wireDelta{ToolCalls: []wireToolCall{args}}, nil, nil)
	} else {
		send(&wireDelta{Content: &text}, nil, nil)
	}
	send(&wireDelta{}, &finish, nil)
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		send(nil, nil, usage)
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
}
