package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
)

// TraceReader is what export_trace needs from the event store;
// store.EventStore satisfies it.
type TraceReader interface {
	ListEvents(ctx context.Context, scope store.Scope, filter store.EventFilter) ([]store.Event, int, error)
}

var (
	_ Tool        = (*ExportTrace)(nil)
	_ TraceReader = store.EventStore(nil)
)

const (
	// exportTracePage is how many events one ListEvents call asks for.
	exportTracePage = 500
	// exportTraceTail is how many of the last events a summary can show.
	exportTraceTail = 50
)

// ExportTrace is the built-in export_trace tool: it returns the stored events
// of a run of the caller's scope as JSON, or a summary (count, types, last
// events) when they do not fit in one result.
type ExportTrace struct {
	events   TraceReader
	pageSize int
}

// NewExportTrace returns an export_trace tool reading events from r.
func NewExportTrace(r TraceReader) *ExportTrace {
	return &ExportTrace{events: r, pageSize: exportTracePage}
}

var exportTraceParams = json.RawMessage(`{
  "type": "object",
  "properties": {
    "run_id": {"type": "string", "minLength": 1, "maxLength": 200,
      "description": "The run whose trace to export (default: the current run)."},
    "format": {"type": "string", "enum": ["json", "jsonl"],
      "description": "json: one object {run_id, count, events: [...]}; jsonl: one event per line (default json)."}
  },
  "additionalProperties": false
}`)

// Spec describes export_trace.
func (t *ExportTrace) Spec() llm.ToolSpec {
	return llm.ToolSpec{
		Name: "export_trace",
		Description: "Export the trace (stored events, oldest first) of a run: by default the current run. " +
			"Returns JSON: {\"run_id\", \"count\", \"events\": [...]} with format json, or one event per line " +
			"with format jsonl. When the trace is too long for one result you get a summary instead: " +
			"\"truncated\": true, the number of events of each type and as many of the last events as fit " +
			"(with jsonl, the summary is the first line and the last events follow).",
		Parameters: exportTraceParams,
	}
}

type exportTraceArgs struct {
	RunID  string `json:"run_id"`
	Format string `json:"format"`
}

// traceSummary is the output when the whole trace does not fit.
type traceSummary struct {
	RunID      string            `json:"run_id"`
	Count      int               `json:"count"`
	Truncated  bool              `json:"truncated"`
	Note       string            `json:"note"`
	FirstID    int64             `json:"first_id"`
	LastID     int64             `json:"last_id"`
	Types      map[string]int    `json:"types"`
	Shown      int               `json:"shown"`
	LastEvents []json.RawMessage `json:"last_events,omitempty"`
}

// Run exports the trace. The run is looked up in call.Scope only: a run of
// another scope, or one without stored events, is "not found".
func (t *ExportTrace) Run(ctx context.Context, call Call) (Result, error) {
	var args exportTraceArgs
	if len(bytes.TrimSpace(call.Args)) > 0 {
		if err := json.Unmarshal(call.Args, &args); err != nil {
			return errorResult("invalid arguments: %v", err), nil
		}
	}
	runID := args.RunID
	if runID == "" {
		runID = call.RunID
	}
	if runID == "" {
		return errorResult("no run_id given and this call is not part of a run"), nil
	}
	format := args.Format
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "jsonl" {
		return errorResult("unknown format %q; use json or jsonl", format), nil
	}
	budget := MaxResultBytes(ctx)

	var (
		count    int
		types    = map[string]int{}
		firstID  int64
		lastID   int64
		full     [][]byte // every event, while they fit the budget
		fullSize int
		overflow bool
		ring     [][]byte // the last events, payloads of huge ones left out
		next     int      // oldest entry of ring once it is full
	)
	after := int64(0)
	for {
		evs, total, err := t.events.ListEvents(ctx, call.Scope, store.EventFilter{RunID: runID, AfterID: after, Limit: t.pageSize})
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return errorResult("run %q not found", runID), nil
			}
			return Result{}, fmt.Errorf("export_trace: list events of run %q: %w", runID, err)
		}
		for _, ev := range evs {
			if ev.ID <= after {
				return Result{}, fmt.Errorf("export_trace: events of run %q are not in increasing id order (%d after %d)", runID, ev.ID, after)
			}
			after = ev.ID
			if count == 0 {
				firstID = ev.ID
			}
			lastID = ev.ID
			count++
			types[ev.Type]++

			enc := encodeEvent(ev)
			if !overflow {
				fullSize += len(enc) + 1
				if fullSize > budget {
					overflow, full = true, nil
				} else {
					full = append(full, enc)
				}
			}
			if len(enc) > budget/4 {
				enc = encodeEventWithoutPayload(ev, len(ev.Payload))
			}
			if len(ring) < exportTraceTail {
				ring = append(ring, enc)
			} else {
				ring[next] = enc
				next = (next + 1) % exportTraceTail
			}
		}
		if len(evs) == 0 || count >= total {
			break
		}
	}
	if count == 0 {
		return errorResult("run %q not found", runID), nil
	}

	if !overflow {
		if out, ok := renderFullTrace(runID, format, full, budget); ok {
			return Result{Content: out}, nil
		}
	}
	return Result{Content: renderTraceSummary(format, traceSummary{
		RunID:     runID,
		Count:     count,
		Truncated: true,
		FirstID:   firstID,
		LastID:    lastID,
		Types:     types,
	}, append(ring[next:len(ring):len(ring)], ring[:next]...), budget)}, nil
}

func renderFullTrace(runID, format string, events [][]byte, budget int) (string, bool) {
	var b bytes.Buffer
	if format == "jsonl" {
		for _, e := range events {
			b.Write(e)
			b.WriteByte('\n')
		}
	} else {
		head, _ := marshalNoEscape(struct {
			RunID string `json:"run_id"`
			Count int    `json:"count"`
		}{runID, len(events)})
		b.Write(head[:len(head)-1]) // drop the closing brace
		b.WriteString(`,"events":[`)
		for i, e := range events {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(e)
		}
		b.WriteString("]}")
	}
	return b.String(), b.Len() <= budget
}

// renderTraceSummary shows the summary with as many of the last events as fit.
func renderTraceSummary(format string, s traceSummary, tail [][]byte, budget int) string {
	render := func(k int) string {
		s.Shown = k
		s.Note = fmt.Sprintf("the trace has %d events, too many for one result; showing counts by type and the last %d events", s.Count, k)
		shown := tail[len(tail)-k:]
		if format == "jsonl" {
			s.LastEvents = nil
			head, _ := marshalNoEscape(s)
			var b bytes.Buffer
			b.Write(head)
			b.WriteByte('\n')
			for _, e := range shown {
				b.Write(e)
				b.WriteByte('\n')
			}
			return b.String()
		}
		s.LastEvents = make([]json.RawMessage, len(shown))
		for i, e := range shown {
			s.LastEvents[i] = e
		}
		out, _ := marshalNoEscape(s)
		return string(out)
	}
	// Estimate how many fit, then step down until the rendering does.
	base := len(render(0)) + 16
	k, size := 0, base
	for i := len(tail) - 1; i >= 0 && size+len(tail[i])+1 <= budget; i-- {
		size += len(tail[i]) + 1
		k++
	}
	for ; k > 0; k-- {
		if out := render(k); len(out) <= budget {
			return out
		}
	}
	return render(0)
}

func encodeEvent(ev store.Event) []byte {
	if b, err := marshalNoEscape(ev); err == nil {
		return b
	}
	// A payload that is not valid JSON is shown as a string.
	raw, _ := marshalNoEscape(string(ev.Payload))
	ev.Payload = raw
	b, _ := marshalNoEscape(ev)
	return b
}

func encodeEventWithoutPayload(ev store.Event, n int) []byte {
	ev.Payload = json.RawMessage(fmt.Sprintf(`{"omitted_bytes":%d}`, n))
	return encodeEvent(ev)
}

// marshalNoEscape is json.Marshal without HTML escaping and without a trailing newline.
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
