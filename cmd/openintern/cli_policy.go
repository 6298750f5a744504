package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/policy"
)

func newPolicyCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Show, replace and try the tool policy: which tool calls run, ask a person or are refused (admin)",
		Long: "The tool policy decides each tool call of an agent: allow, ask (the run waits for a person) or deny\n" +
			"(the model is told why). The operator's rules (agent.config.json \"policy\") come first, then the\n" +
			"scope's rules (a project's, then those of the scope without project), then the built-in defaults for\n" +
			"high-risk tools; in each list the first rule that matches decides.",
		Example: "  openintern policy show\n" +
			"  openintern policy set rules.json            # [{\"tool\":\"shell\",\"effect\":\"deny\",\"reason\":\"no shell\"}]\n" +
			"  openintern policy check --tool write_file --agent main --args '{\"path\":\"notes.md\",\"content\":\"x\"}'",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(cmd.PersistentFlags())
	cmd.AddCommand(newPolicyShowCmd(lookupEnv), newPolicySetCmd(lookupEnv), newPolicyCheckCmd(lookupEnv))
	return cmd
}

// policyView is GET /api/policy's answer.
type policyView struct {
	Rules       []policy.Rule `json:"rules"`
	Version     int64         `json:"version"`
	UpdatedBy   string        `json:"updated_by"`
	ConfigRules []policy.Rule `json:"config_rules"`
	Defaults    []string      `json:"defaults"`
}

func newPolicyShowCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return &cobra.Command{
		Use:     "show",
		Short:   "Show the scope's rules, the operator's rules and the defaults in effect",
		Example: "  openintern policy show\n  openintern policy show --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodGet, "/api/policy", nil, &raw); err != nil {
				return fmt.Errorf("policy show: %w", err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				_, err := fmt.Fprintf(out, "%s\n", raw)
				return err
			}
			var v policyView
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("policy show: %w", err)
			}
			st := newStyle(out, lookupEnv)
			fmt.Fprintln(out, st.bold("Operator's rules (config, first):"))
			if err := writeRules(out, v.ConfigRules); err != nil {
				return err
			}
			fmt.Fprintln(out, st.bold(fmt.Sprintf("Scope's rules (version %d):", v.Version)))
			if err := writeRules(out, v.Rules); err != nil {
				return err
			}
			fmt.Fprintln(out, st.bold("Built-in defaults (last):"))
			if len(v.Defaults) == 0 {
				fmt.Fprintln(out, "  off: a call no rule matches runs")
			}
			for _, d := range v.Defaults {
				fmt.Fprintln(out, "  "+d)
			}
			return nil
		},
	}
}

func writeRules(out io.Writer, rules []policy.Rule) error {
	if len(rules) == 0 {
		_, err := fmt.Fprintln(out, "  none")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tTOOL\tAGENT\tROLE\tARGS\tEFFECT\tREASON")
	for _, r := range rules {
		var args []string
		for k, v := range r.Args {
			args = append(args, k+"="+v)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Tool, orDash(r.Agent), orDash(r.Role), orDash(strings.Join(args, " ")), r.Effect, orDash(r.Reason))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newPolicySetCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "set FILE",
		Short: "Replace the scope's rules with those of FILE (a JSON list of rules, or {\"rules\": [...]}; - reads stdin)",
		Example: "  openintern policy set rules.json\n" +
			"  openintern policy set rules.json --version 3   # refused if someone changed the rules since version 3",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var raw []byte
			if args[0] == "-" {
				raw, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
			} else {
				raw, err = os.ReadFile(args[0])
			}
			if err != nil {
				return fmt.Errorf("policy set: %w", err)
			}
			body := map[string]any{}
			trimmed := bytes.TrimSpace(raw)
			if len(trimmed) > 0 && trimmed[0] == '[' {
				body["rules"] = json.RawMessage(trimmed)
			} else {
				var doc struct {
					Rules   json.RawMessage `json:"rules"`
					Version *int64          `json:"version"`
				}
				if err := json.Unmarshal(trimmed, &doc); err != nil || doc.Rules == nil {
					return &exitError{code: 2, err: fmt.Errorf("policy set: %s is not a JSON list of rules or {\"rules\": [...]}", args[0])}
				}
				body["rules"] = doc.Rules
				if doc.Version != nil {
					body["version"] = *doc.Version
				}
			}
			if cmd.Flags().Changed("version") {
				v, _ := cmd.Flags().GetInt64("version")
				body["version"] = v
			}
			var v policyView
			if err := c.do(cmd.Context(), http.MethodPut, "/api/policy", body, &v); err != nil {
				return fmt.Errorf("policy set: %w", err)
			}
			if opts.JSON {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "policy version %d: %d rules\n", v.Version, len(v.Rules))
			return nil
		},
	}
	cmd.Flags().Int64("version", 0, "the version the rules replace (refused if it changed since); default: overwrite")
	return cmd
}

func newPolicyCheckCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "check",
		Short:   "Dry run: what the policy decides for a call of --tool by --agent, and which rule decided",
		Example: "  openintern policy check --tool http_fetch --agent main --args '{\"url\":\"https://example.com/\"}'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			fs := cmd.Flags()
			tool, _ := fs.GetString("tool")
			agent, _ := fs.GetString("agent")
			role, _ := fs.GetString("role")
			args, _ := fs.GetString("args")
			if tool == "" {
				return &exitError{code: 2, err: errors.New("policy check: --tool is required")}
			}
			if !json.Valid([]byte(args)) {
				return &exitError{code: 2, err: errors.New("policy check: --args must be a JSON object, like '{\"path\":\"a.md\"}'")}
			}
			body := map[string]any{"tool": tool, "agent_id": agent, "role": role, "args": json.RawMessage(args)}
			var d policy.Decision
			if err := c.do(cmd.Context(), http.MethodPost, "/api/policy/check", body, &d); err != nil {
				return fmt.Errorf("policy check: %w", err)
			}
			if opts.JSON {
				return writeJSON(cmd.OutOrStdout(), d)
			}
			by := d.Rule
			if by == "" {
				by = "no rule matched"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s (%s, %s)\n", d.Effect, by, d.Source)
			if d.Reason != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", d.Reason)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.String("tool", "", "the tool's name (required)")
	fs.String("agent", "main", "the calling agent's id")
	fs.String("role", "", "the role the agent acts in, if any")
	fs.String("args", "{}", "the call's arguments as JSON")
	return cmd
}
