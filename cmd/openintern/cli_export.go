package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/store"
)

// writeExportJSON writes the --format json document, {"run": …, "events":
// […]}, with the run and each event compact on a line of its own, byte for
// byte as the API sent them (re-indenting would change the payloads' raw
// text), so decoding the file gives back exactly the API's values.
func writeExportJSON(buf *bytes.Buffer, run json.RawMessage, events []json.RawMessage) error {
	compact := func(raw json.RawMessage) error {
		if err := json.Compact(buf, raw); err != nil {
			return fmt.Errorf("encode trace: %w", err)
		}
		return nil
	}
	buf.WriteString("{\n  \"run\": ")
	if err := compact(run); err != nil {
		return err
	}
	buf.WriteString(",\n  \"events\": [")
	for i, e := range events {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n    ")
		if err := compact(e); err != nil {
			return err
		}
	}
	if len(events) > 0 {
		buf.WriteString("\n  ")
	}
	buf.WriteString("]\n}\n")
	return nil
}

func newExportCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export RUN_ID",
		Short: "Write a run's whole trace as JSON, JSON lines or Markdown",
		Long: "Export every stored event of a run (paging through GET /api/runs/:id/events).\n" +
			"  json   {\"run\": {…}, \"events\": [{…}, …]}\n" +
			"  jsonl  one event per line\n" +
			"  md     a readable report: input, each step's model output and tool calls, output, event table",
		Example: "  openintern export run_0f8c… --format md -o trace.md\n" +
			"  openintern export run_0f8c… --format jsonl | jq -r .type",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, _ := cmd.Flags().GetString("format")
			switch format {
			case "json", "jsonl", "md":
			default:
				return fmt.Errorf("--format must be json, jsonl or md, not %q", format)
			}
			c, _, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			runID := args[0]
			run, rawRun, err := c.getRun(cmd.Context(), runID)
			if err != nil {
				return err
			}
			events, err := c.runEvents(cmd.Context(), runID, 0)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			switch format {
			case "json":
				if err := writeExportJSON(&buf, rawRun, events); err != nil {
					return err
				}
			case "jsonl":
				for _, e := range events {
					if err := writeLine(&buf, e); err != nil {
						return err
					}
				}
			case "md":
				decoded := make([]store.Event, len(events))
				for i, raw := range events {
					if err := json.Unmarshal(raw, &decoded[i]); err != nil {
						return fmt.Errorf("decode event: %w", err)
					}
				}
				writeMarkdown(&buf, run, decoded)
			}
			path, _ := cmd.Flags().GetString("output")
			if path == "" || path == "-" {
				_, err := cmd.OutOrStdout().Write(buf.Bytes())
				return err
			}
			if err := writeFileAtomic(path, buf.Bytes()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%d events, %s)\n", path, len(events), byteSize(buf.Len()))
			return nil
		},
	}
	cmd.Flags().StringP("format", "f", "json", "json, jsonl or md")
	cmd.Flags().StringP("output", "o", "", "write to this file instead of stdout")
	addClientFlags(cmd.Flags())
	return cmd
}

// writeFileAtomic writes through a temporary file and a rename, so an
// interrupted export never leaves half a trace under the final name.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return writeLine(w, data)
}

func writeLine(w io.Writer, data []byte) error {
	if _, err := w.Write(append(bytes.TrimSpace(data), '\n')); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// writeMarkdown renders a trace for people: the input, then each step with
// the model's output and its tool calls and results, then the output and a
// table of every event.
func writeMarkdown(out *bytes.Buffer, run store.Run, events []store.Event) {
	w := bufio.NewWriter(out)
	defer w.Flush()
	fmt.Fprintf(w, "# Run %s\n\n", run.ID)
	fmt.Fprintf(w, "| | |\n|---|---|\n")
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "| %s | %s |\n", k, mdCell(v))
		}
	}
	row("agent", run.AgentID)
	row("session", run.SessionKey)
	row("group", run.GroupID)
	row("status", run.Status)
	row("error", runErrorText(run.Error))
	row("steps", fmt.Sprint(run.Steps))
	row("tokens", fmt.Sprintf("%d (prompt %d, completion %d)", run.Usage.TotalTokens, run.Usage.PromptTokens, run.Usage.CompletionTokens))
	row("created", run.CreatedAt.UTC().Format(time.RFC3339))
	if run.StartedAt != nil && run.EndedAt != nil {
		row("duration", run.EndedAt.Sub(*run.StartedAt).Round(time.Millisecond).String())
	}
	fmt.Fprintf(w, "\n## Input\n\n%s\n", mdBlock(run.Input, ""))

	for _, ev := range events {
		p := payloadFields(ev)
		switch ev.Type {
		case "step.started":
			fmt.Fprintf(w, "\n## Step %d\n\n", p.Step)
		case "run.resumed":
			fmt.Fprintf(w, "\n_Resumed after a restart (from step %d)._\n", p.FromStep)
		case "llm.called":
			fmt.Fprintf(w, "**Model** %s %s, %d ms", p.Provider, p.Model, p.DurationMS)
			if p.FinishReason != "" {
				fmt.Fprintf(w, ", finish: %s", p.FinishReason)
			}
			fmt.Fprintln(w)
			if e := p.errorText(); e != "" {
				fmt.Fprintf(w, "\nError: %s\n\n", e)
			} else if strings.TrimSpace(p.Content) != "" {
				fmt.Fprintf(w, "\n%s\n", mdBlock(p.Content, ""))
			} else {
				fmt.Fprintln(w)
			}
		case "tool.called":
			fmt.Fprintf(w, "**Tool call** `%s`\n\n%s\n", p.Name, mdBlock(indentJSON(p.Arguments), "json"))
		case "tool.result":
			label := byteSize(len(p.Content))
			if p.IsError {
				label = "error"
			}
			fmt.Fprintf(w, "**Tool result** `%s` (%s, %d ms)\n\n%s\n", p.Name, label, p.DurationMS, mdBlock(p.Content, ""))
		case "tool.blocked":
			fmt.Fprintf(w, "**Tool blocked** `%s`: %s\n\n", p.Name, p.Reason)
		}
	}
	if run.Output != "" {
		fmt.Fprintf(w, "\n## Output\n\n%s\n", mdBlock(run.Output, ""))
	}
	if run.Error != nil {
		fmt.Fprintf(w, "\n## Error\n\n%s\n", mdBlock(runErrorText(run.Error), ""))
	}
	fmt.Fprintf(w, "\n## Events\n\n| id | time | type | step | summary |\n|---|---|---|---|---|\n")
	for _, ev := range events {
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s |\n", ev.ID, ev.TS.UTC().Format("15:04:05.000"), ev.Type, ev.StepID, mdCell(eventSummary(ev)))
	}
}

// mdBlock fences text so nothing inside it (backticks included) can break
// out of the block: the fence is longer than any backtick run in the text.
func mdBlock(text, lang string) string {
	longest, run := 0, 0
	for _, r := range text {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", max(3, longest+1))
	return fence + lang + "\n" + strings.TrimRight(text, "\n") + "\n" + fence + "\n"
}

// mdCell makes text safe inside a table cell: one line, pipes escaped.
func mdCell(s string) string {
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", `\|`)
}

func indentJSON(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") != nil {
		return string(raw)
	}
	return buf.String()
}
