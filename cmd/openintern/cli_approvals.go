package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/store"
)

// approvalOut is an approval as the API answers it (arguments as JSON).
type approvalOut struct {
	store.Approval
	Arguments json.RawMessage `json:"arguments"`
}

func newApprovalsCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "List, approve and deny tool calls waiting for a person's approval",
		Example: "  openintern approvals list\n  openintern approvals show appr_1a2b\n" +
			"  openintern approvals approve appr_1a2b --reason 'checked the path'\n  openintern approvals deny appr_1a2b --reason 'not on prod'",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(cmd.PersistentFlags())
	cmd.AddCommand(newApprovalsListCmd(lookupEnv), newApprovalsShowCmd(lookupEnv),
		newApprovalsResolveCmd(lookupEnv, "approve"), newApprovalsResolveCmd(lookupEnv, "deny"))
	return cmd
}

func newApprovalsListCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List approvals, newest first (default: the pending ones)",
		Example: "  openintern approvals list\n  openintern approvals list --status denied --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			status, _ := cmd.Flags().GetString("status")
			q := url.Values{}
			switch status {
			case "all":
			case store.ApprovalPending, store.ApprovalApproved, store.ApprovalDenied, store.ApprovalExpired:
				q.Set("status", status)
			default:
				return fmt.Errorf("--status must be pending, approved, denied, expired or all")
			}
			for _, f := range []string{"agent", "run"} {
				if v, _ := cmd.Flags().GetString(f); v != "" {
					q.Set(f+"_id", v)
				}
			}
			limit, _ := cmd.Flags().GetInt("limit")
			if limit < 1 || limit > 200 {
				return fmt.Errorf("--limit must be between 1 and 200")
			}
			q.Set("limit", strconv.Itoa(limit))
			var page struct {
				Approvals []approvalOut `json:"approvals"`
				Total     int           `json:"total"`
			}
			if err := c.do(cmd.Context(), http.MethodGet, "/api/approvals?"+q.Encode(), nil, &page); err != nil {
				return fmt.Errorf("list approvals: %w", err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				if page.Approvals == nil {
					page.Approvals = []approvalOut{}
				}
				return writeJSON(out, page)
			}
			if len(page.Approvals) == 0 {
				fmt.Fprintln(out, "No approvals.")
				return nil
			}
			st := newStyle(out, lookupEnv)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, st.bold("ID\tSTATUS\tAGENT\tTOOL\tARGUMENTS\tREASON\tEXPIRES"))
			for _, a := range page.Approvals {
				status := a.Status
				switch a.Status {
				case store.ApprovalPending:
					status = st.yellow(status)
				case store.ApprovalApproved:
					status = st.green(status)
				default:
					status = st.red(status)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, status, a.AgentID, a.Tool, squeeze(string(a.Arguments), 60),
					dash(squeeze(a.Reason, 40)), a.ExpiresAt.Local().Format(time.DateTime))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if page.Total > len(page.Approvals) {
				fmt.Fprintf(out, "%d of %d shown (--limit)\n", len(page.Approvals), page.Total)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.String("status", store.ApprovalPending, "pending, approved, denied, expired or all")
	f.String("agent", "", "only approvals of this agent")
	f.String("run", "", "only approvals of this run")
	f.Int("limit", 50, "at most this many approvals (1-200)")
	return cmd
}

func newApprovalsShowCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return &cobra.Command{
		Use:     "show APPROVAL_ID",
		Short:   "Show one approval: the call, its arguments, the policy's reason, the decision",
		Example: "  openintern approvals show appr_1a2b",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var a approvalOut
			if err := c.do(cmd.Context(), http.MethodGet, "/api/approvals/"+url.PathEscape(args[0]), nil, &a); err != nil {
				return fmt.Errorf("show approval: %w", err)
			}
			return printApproval(cmd, lookupEnv, opts.JSON, a)
		},
	}
}

func newApprovalsResolveCmd(lookupEnv func(string) (string, bool), decision string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   decision + " APPROVAL_ID",
		Short: map[string]string{"approve": "Approve a pending call: it runs and the run goes on", "deny": "Deny a pending call: the model is told, and the run goes on"}[decision],
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			reason, _ := cmd.Flags().GetString("reason")
			body := map[string]any{"decision": decision, "reason": reason}
			if decision == "approve" {
				if always, _ := cmd.Flags().GetBool("always"); always {
					body["always"] = true
				}
			}
			var a approvalOut
			if err := c.do(cmd.Context(), http.MethodPost, "/api/approvals/"+url.PathEscape(args[0])+"/resolve", body, &a); err != nil {
				return fmt.Errorf("%s: %w", decision, err)
			}
			return printApproval(cmd, lookupEnv, opts.JSON, a)
		},
	}
	cmd.Flags().String("reason", "", "why (shown in the trace; a denial's reason is told to the model)")
	if decision == "approve" {
		cmd.Flags().Bool("always", false, "also allow this tool for this agent from now on (a policy rule; admin)")
		cmd.Example = "  openintern approvals approve appr_1a2b\n  openintern approvals approve appr_1a2b --always"
	} else {
		cmd.Example = "  openintern approvals deny appr_1a2b --reason 'not on prod'"
	}
	return cmd
}

func printApproval(cmd *cobra.Command, lookupEnv func(string) (string, bool), asJSON bool, a approvalOut) error {
	out := cmd.OutOrStdout()
	if asJSON {
		return writeJSON(out, a)
	}
	st := newStyle(out, lookupEnv)
	args := string(a.Arguments)
	if b, err := json.MarshalIndent(a.Arguments, "  ", "  "); err == nil {
		args = string(b)
	}
	fmt.Fprintf(out, "%s %s\n", st.bold(a.ID), a.Status)
	fmt.Fprintf(out, "  tool:      %s (call %s)\n  agent:     %s\n  run:       %s (step %d)\n", a.Tool, a.CallID, a.AgentID, a.RunID, a.Step)
	fmt.Fprintf(out, "  reason:    %s\n  expires:   %s\n", dash(a.Reason), a.ExpiresAt.Local().Format(time.DateTime))
	if a.DecidedAt != nil {
		fmt.Fprintf(out, "  decided:   %s by %s%s\n", a.DecidedAt.Local().Format(time.DateTime), a.DecidedBy, reasonSuffix(a.DecisionReason))
	}
	fmt.Fprintf(out, "  arguments: %s\n", args)
	return nil
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

// squeeze puts s on one line of at most n runes.
func squeeze(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
