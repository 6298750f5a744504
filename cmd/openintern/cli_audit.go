package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/store"
)

func newAuditCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the audit log: who changed what, and how it ended (admin)",
		Example: "  openintern audit list\n  openintern audit list --action 'DELETE /api/agents/:agent_id'\n" +
			"  openintern audit list --actor agent:main --since 2026-01-02T00:00:00Z",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(cmd.PersistentFlags())
	cmd.AddCommand(newAuditListCmd(lookupEnv))
	return cmd
}

func newAuditListCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the scope's audit records, newest first",
		Example: "  openintern audit list --target a1\n  openintern audit list --action tool:memory_write --limit 500 --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			limit, _ := cmd.Flags().GetInt("limit")
			if limit < 1 || limit > 100_000 {
				return fmt.Errorf("--limit must be between 1 and 100000")
			}
			q := url.Values{}
			for _, f := range []string{"actor", "action", "target", "since", "until"} {
				if v, _ := cmd.Flags().GetString(f); v != "" {
					if f == "since" || f == "until" {
						if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
							return fmt.Errorf("--%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", f)
						}
					}
					q.Set(f, v)
				}
			}
			var records []store.AuditRecord
			for len(records) < limit {
				q.Set("limit", strconv.Itoa(min(1000, limit-len(records))))
				var page struct {
					Records    []store.AuditRecord `json:"records"`
					NextCursor *string             `json:"next_cursor"`
				}
				if err := c.do(cmd.Context(), http.MethodGet, "/api/audit?"+q.Encode(), nil, &page); err != nil {
					return fmt.Errorf("list audit records: %w", err)
				}
				records = append(records, page.Records...)
				if page.NextCursor == nil {
					break
				}
				q.Set("cursor", *page.NextCursor)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				if records == nil {
					records = []store.AuditRecord{}
				}
				return writeJSON(out, map[string]any{"records": records, "total": len(records)})
			}
			if len(records) == 0 {
				fmt.Fprintln(out, "No audit records.")
				return nil
			}
			st := newStyle(out, lookupEnv)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, st.bold("TIME\tACTOR\tACTION\tTARGET\tOUTCOME\tDETAIL"))
			for _, r := range records {
				outcome := r.Outcome
				switch {
				case r.Outcome == store.AuditOK || (len(r.Outcome) == 3 && r.Outcome[0] == '2'):
					outcome = st.green(outcome)
				case r.Outcome != "":
					outcome = st.red(outcome)
				}
				actor := r.Actor
				if r.ActorName != "" {
					actor += " (" + r.ActorName + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Local().Format(time.DateTime), actor, r.Action,
					dash(r.Target), outcome, dash(r.Detail))
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.String("actor", "", `only records of this actor ("token:<id>", "anonymous", "agent:<agent_id>")`)
	f.String("action", "", `only records of this action ("POST /api/agents", "tool:memory_write")`)
	f.String("target", "", "only records about this resource id")
	f.String("since", "", "only records at or after this RFC 3339 time")
	f.String("until", "", "only records before this RFC 3339 time")
	f.Int("limit", 50, "at most this many records")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
