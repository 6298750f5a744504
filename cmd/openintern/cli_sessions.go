package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/store"
)

func newSessionsCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "sessions",
		Aliases: []string{"session"},
		Short:   "List and inspect sessions (the runs that share a session key)",
		Example: "  openintern sessions list\n  openintern sessions show default",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(cmd.PersistentFlags())
	cmd.AddCommand(newSessionsListCmd(lookupEnv), newSessionsShowCmd(lookupEnv))
	return cmd
}

func newSessionsListCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the sessions of the scope, the most recently active first",
		Example: "  openintern sessions list\n  openintern sessions list --limit 5 --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			limit, _ := cmd.Flags().GetInt("limit")
			if limit < 1 || limit > 200 {
				return fmt.Errorf("--limit must be between 1 and 200")
			}
			var resp struct {
				Sessions []json.RawMessage `json:"sessions"`
				Total    int               `json:"total"`
			}
			q := url.Values{"limit": {fmt.Sprint(limit)}}
			if err := c.do(cmd.Context(), http.MethodGet, "/api/sessions?"+q.Encode(), nil, &resp); err != nil {
				return fmt.Errorf("list sessions: %w", err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				if resp.Sessions == nil {
					resp.Sessions = []json.RawMessage{}
				}
				return writeJSON(out, map[string]any{"sessions": resp.Sessions, "total": resp.Total})
			}
			st := newStyle(out, lookupEnv)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, st.bold("SESSION\tRUNS\tSTATUS\tAGENTS\tLAST ACTIVITY"))
			for _, raw := range resp.Sessions {
				var s store.Session
				if err := json.Unmarshal(raw, &s); err != nil {
					return fmt.Errorf("decode session: %w", err)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", truncate(s.Key, 40), s.Runs, runCounts(s.RunsByStatus),
					truncate(strings.Join(s.AgentIDs, ","), 40), s.LastActivityAt.Local().Format(time.DateTime))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if resp.Total > len(resp.Sessions) {
				fmt.Fprintf(out, "(%d of %d sessions; --limit shows more)\n", len(resp.Sessions), resp.Total)
			}
			return nil
		},
	}
	cmd.Flags().Int("limit", 50, "how many sessions to show (1-200)")
	return cmd
}

func newSessionsShowCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return &cobra.Command{
		Use:     "show SESSION_KEY",
		Aliases: []string{"get"},
		Short:   "Show one session: its runs by status, agents and last activity",
		Example: "  openintern sessions show default\n  openintern sessions show default --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodGet, "/api/sessions/"+url.PathEscape(args[0]), nil, &raw); err != nil {
				if isNotFound(err) {
					return fmt.Errorf("session %s not found (in %s)", args[0], c.opts.scopeHint())
				}
				return err
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				return writeLine(out, raw)
			}
			var s store.Session
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("decode session: %w", err)
			}
			printSession(out, s)
			return nil
		},
	}
}

func printSession(w io.Writer, s store.Session) {
	agents := strings.Join(s.AgentIDs, ", ")
	if agents == "" {
		agents = "(none)"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"session", s.Key}, {"runs", fmt.Sprint(s.Runs)}, {"status", runCounts(s.RunsByStatus)}, {"agents", agents},
		{"created", s.CreatedAt.Local().Format(time.DateTime)}, {"last activity", s.LastActivityAt.Local().Format(time.DateTime)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	_ = tw.Flush()
}

// runCounts renders run counts by status as "completed 3, failed 1".
func runCounts(by map[string]int) string {
	statuses := make([]string, 0, len(by))
	for st := range by {
		statuses = append(statuses, st)
	}
	sort.Strings(statuses)
	parts := make([]string, len(statuses))
	for i, st := range statuses {
		parts[i] = fmt.Sprintf("%s %d", st, by[st])
	}
	return strings.Join(parts, ", ")
}
