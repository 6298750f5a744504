package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/store"
)

// clientCommands are the commands that talk to a running daemon.
func clientCommands(lookupEnv func(string) (string, bool)) []*cobra.Command {
	return []*cobra.Command{
		newRunCmd(lookupEnv),
		newTailCmd(lookupEnv),
		newExportCmd(lookupEnv),
		newAgentsCmd(lookupEnv),
		newMemoryCmd(lookupEnv),
		newJobsCmd(lookupEnv),
		newRolesCmd(lookupEnv),
		newGroupsCmd(lookupEnv),
		newSessionsCmd(lookupEnv),
		newAuditCmd(lookupEnv),
		newPolicyCmd(lookupEnv),
		newApprovalsCmd(lookupEnv),
		newDoctorCmd(lookupEnv),
		newBenchCmd(lookupEnv),
		newMCPCmd(lookupEnv),
		newSkillsCmd(lookupEnv),
		newFeishuCmd(lookupEnv),
		newClusterCmd(lookupEnv),
		newHealthCmd(lookupEnv),
		newCompletionCmd(),
	}
}

// clientFor builds the options and the API client of a command.
func clientFor(cmd *cobra.Command, lookupEnv func(string) (string, bool)) (*apiClient, clientOptions, error) {
	opts := clientOptionsFrom(cmd, lookupEnv)
	c, err := newAPIClient(opts)
	return c, opts, err
}

// interruptible returns a context cancelled by Ctrl-C or SIGTERM. After the
// first signal the default handling is restored, so a second Ctrl-C kills
// the process even if the daemon does not answer the cancel.
func interruptible(ctx context.Context) (context.Context, func()) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

func newRunCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run INPUT",
		Short: "Start a run on an agent, and optionally stream it",
		Long: "Start a run: INPUT goes to the agent's inbox as one unit of work (POST /api/runs).\n" +
			"With --stream the answer is printed as it is generated, tool calls as short lines,\n" +
			"and the exit code is the run's: 0 completed, 1 failed or cancelled, 130 on Ctrl-C\n" +
			"(which cancels the run). INPUT \"-\" reads the input from stdin.",
		Example: "  openintern run \"summarize notes.txt\" --stream\n" +
			"  openintern run \"draft a haiku\" --agent writer --session poems --wait\n" +
			"  echo \"read file notes.txt\" | openintern run - --stream --json",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			input := args[0]
			if input == "-" {
				raw, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
				if err != nil {
					return fmt.Errorf("read input from stdin: %w", err)
				}
				input = string(raw)
			}
			if strings.TrimSpace(input) == "" {
				return errors.New("the run's input is empty")
			}
			agent, _ := cmd.Flags().GetString("agent")
			session, _ := cmd.Flags().GetString("session")
			stream, _ := cmd.Flags().GetBool("stream")
			wait, _ := cmd.Flags().GetBool("wait")

			ctx, stop := interruptible(cmd.Context())
			defer stop()
			started := time.Now()
			created, err := c.createRun(ctx, agent, session, input)
			if err != nil {
				if isNotFound(err) {
					return fmt.Errorf("agent %s not found (in %s); create it with `openintern agents create %s`", agent, opts.scopeHint(), agent)
				}
				return fmt.Errorf("create run: %w", err)
			}
			out := cmd.OutOrStdout()
			if !stream && !wait {
				if opts.JSON {
					return writeJSON(out, created)
				}
				fmt.Fprintf(out, "%s %s (agent %s, session %s)\nfollow it with: openintern tail %s\n",
					created.RunID, created.Status, created.AgentID, created.SessionKey, created.RunID)
				return nil
			}
			st := newStyle(out, lookupEnv)
			var handle func(streamEvent) error
			switch {
			case stream && opts.JSON:
				handle = func(ev streamEvent) error { return writeLine(out, ev.Raw) }
			case stream:
				r := &answerRenderer{w: out, st: st, streamed: map[string]string{}, atLineStart: true}
				handle = r.event
			default:
				handle = func(streamEvent) error { return nil }
			}
			run, err := followRun(ctx, c, created.RunID, handle)
			if err != nil {
				if ctx.Err() != nil && cmd.Context().Err() == nil {
					return interrupted(c, created.RunID, out, stream && !opts.JSON)
				}
				return err
			}
			switch {
			case opts.JSON && !stream:
				_, raw, err := c.getRun(cmd.Context(), run.ID)
				if err != nil {
					return err
				}
				if err := writeLine(out, raw); err != nil {
					return err
				}
			case !opts.JSON:
				if !stream && run.Output != "" {
					fmt.Fprintln(out, run.Output)
				}
				fmt.Fprintln(out, statusLine(st, run, time.Since(started)))
			}
			return runOutcome(run)
		},
	}
	fs := cmd.Flags()
	fs.String("agent", store.MainAgentID, "agent that does the work")
	fs.String("session", "", "session key; runs of one session share their history (default \"default\")")
	fs.Bool("stream", false, "print the answer as it streams, and exit with the run's status")
	fs.Bool("wait", false, "wait for the run to end, print its output, and exit with its status")
	addClientFlags(fs)
	return cmd
}

// followRun follows a run's stream until it ends and returns the run as stored.
//
// When the stream ends, stored events after the last one received are fetched
// from the events API and handed to fn too: a stream can end as soon as the
// server sees the run finished, and events committed between its replay and
// that check would otherwise never be shown.
func followRun(ctx context.Context, c *apiClient, runID string, fn func(streamEvent) error) (store.Run, error) {
	lastID, err := c.followStream(ctx, "/api/runs/"+url.PathEscape(runID)+"/stream", 0, fn)
	if err != nil {
		return store.Run{}, c.runNotFound(runID, err)
	}
	rest, err := c.runEvents(ctx, runID, lastID)
	if err != nil {
		return store.Run{}, err
	}
	for _, raw := range rest {
		ev := streamEvent{Raw: raw}
		if err := json.Unmarshal(raw, &ev.Event); err != nil {
			return store.Run{}, fmt.Errorf("decode event: %w", err)
		}
		if err := fn(ev); err != nil {
			return store.Run{}, err
		}
	}
	run, _, err := c.getRun(ctx, runID)
	return run, err
}

// runOutcome maps the run's final status to the process exit: the error line
// says why, the code is 1 for anything but completed.
func runOutcome(run store.Run) error {
	switch run.Status {
	case store.RunCompleted:
		return nil
	case store.RunFailed:
		return &exitError{code: 1, err: fmt.Errorf("run %s failed: %s", run.ID, runErrorText(run.Error))}
	case store.RunCancelled:
		return &exitError{code: 1, err: fmt.Errorf("run %s was cancelled", run.ID)}
	}
	return &exitError{code: 1, err: fmt.Errorf("run %s is %s", run.ID, run.Status)}
}

// interrupted cancels the run after Ctrl-C, with its own short deadline since
// the command's context is already done, and exits 130 like a shell does.
func interrupted(c *apiClient, runID string, out io.Writer, human bool) error {
	if human {
		fmt.Fprintln(out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.cancelRun(ctx, runID); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == "run_finished" {
			return &exitError{code: 130, err: fmt.Errorf("interrupted; run %s had already ended", runID)}
		}
		return &exitError{code: 130, err: fmt.Errorf("interrupted; cancelling run %s failed: %w", runID, err)}
	}
	return &exitError{code: 130, err: fmt.Errorf("interrupted; run %s cancelled", runID)}
}

// answerRenderer prints a run the way a person wants to watch it: the
// model's text as it streams, tool calls as one short line each.
type answerRenderer struct {
	w           io.Writer
	st          style
	atLineStart bool
	// streamed is the text printed per step from llm.token events. Tokens are
	// live-only, so after a reconnect (or for a run that had already ended)
	// the rest of the answer comes from the stored llm.called event.
	streamed map[string]string
}

func (r *answerRenderer) text(s string) {
	if s == "" {
		return
	}
	fmt.Fprint(r.w, s)
	r.atLineStart = strings.HasSuffix(s, "\n")
}

// endLine finishes a line of streamed text, so what follows starts a line.
func (r *answerRenderer) endLine() {
	if !r.atLineStart {
		fmt.Fprintln(r.w)
		r.atLineStart = true
	}
}

func (r *answerRenderer) line(s string) {
	if !r.atLineStart {
		fmt.Fprintln(r.w)
	}
	fmt.Fprintln(r.w, s)
	r.atLineStart = true
}

func (r *answerRenderer) event(ev streamEvent) error {
	p := payloadFields(ev.Event)
	switch ev.Type {
	case "llm.token":
		r.text(p.Delta)
		r.streamed[ev.StepID] += p.Delta
	case "llm.called":
		if p.errorText() != "" {
			// A model error ends the run; the status line reports it once.
			break
		}
		// Print what the tokens did not already show.
		if done := r.streamed[ev.StepID]; strings.HasPrefix(p.Content, done) {
			r.text(p.Content[len(done):])
		}
		if len(p.ToolCalls) > 0 {
			r.endLine()
		}
	case "tool.called":
		r.line(r.st.cyan("→ "+p.Name) + " " + r.st.dim(compactArgs(p.Arguments)))
	case "tool.result":
		if p.IsError {
			r.line(r.st.red("← " + p.Name + " " + toolResultText(p)))
		} else {
			r.line(r.st.dim("← " + p.Name + " " + toolResultText(p)))
		}
	case "tool.blocked":
		r.line(r.st.yellow("⊘ " + p.Name + " blocked: " + truncate(p.Reason, 160)))
	case "run.resumed":
		r.line(r.st.dim("… resumed after a restart"))
	case "run.completed", "run.failed", "run.cancelled":
		r.endLine()
	}
	return nil
}

func newTailCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tail RUN_ID",
		Short: "Follow a run's events until it ends",
		Long: "Print a run's events, one line each, from its first event; keep following until the run\n" +
			"ends (a dropped connection is resumed where it left off, with Last-Event-ID). A run\n" +
			"that has already ended is printed whole. Exit code: 0 completed, 1 failed or cancelled.",
		Example: "  openintern tail run_0f8c…\n" +
			"  openintern tail run_0f8c… --json | jq -r .type",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			runID := args[0]
			out := cmd.OutOrStdout()
			st := newStyle(out, lookupEnv)
			tokens, _ := cmd.Flags().GetBool("tokens")
			handle := func(ev streamEvent) error {
				if ev.Type == "llm.token" && !tokens {
					return nil
				}
				if opts.JSON {
					return writeLine(out, ev.Raw)
				}
				_, err := fmt.Fprintln(out, tailLine(st, ev.Event))
				return err
			}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			run, err := followRun(ctx, c, runID, handle)
			if err != nil {
				if ctx.Err() != nil && cmd.Context().Err() == nil {
					// Ctrl-C only stops watching; the run goes on.
					return &exitError{code: 130, err: errors.New("interrupted")}
				}
				return err
			}
			return runOutcome(run)
		},
	}
	cmd.Flags().Bool("tokens", false, "also print live llm.token events (not stored, so not replayed)")
	addClientFlags(cmd.Flags())
	return cmd
}

func tailLine(st style, ev store.Event) string {
	id := "    -"
	if ev.ID > 0 {
		id = fmt.Sprintf("%5d", ev.ID)
	}
	typ := fmt.Sprintf("%-19s", ev.Type)
	switch {
	case ev.Type == "run.completed":
		typ = st.green(typ)
	case ev.Type == "run.failed" || ev.Type == "run.cancelled" || ev.Type == "tool.blocked":
		typ = st.red(typ)
	case strings.HasPrefix(ev.Type, "tool."):
		typ = st.cyan(typ)
	}
	return st.dim(id+" "+ev.TS.Local().Format("15:04:05.000")) + " " + typ + " " + eventSummary(ev)
}
