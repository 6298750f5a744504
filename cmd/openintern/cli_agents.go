package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newAgentsCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "agents",
		Aliases: []string{"agent"},
		Short:   "List, create, inspect, pause, resume and message agents",
		Example: "  openintern agents list\n" +
			"  openintern agents create writer --name Writer --prompt \"You write haiku.\"\n" +
			"  openintern agents send writer \"draft a haiku about rain\"",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	// Client flags are persistent here so they work after any subcommand.
	addClientFlags(cmd.PersistentFlags())
	cmd.AddCommand(
		newAgentsListCmd(lookupEnv),
		newAgentsCreateCmd(lookupEnv),
		newAgentsShowCmd(lookupEnv),
		newAgentsStateCmd(lookupEnv, "pause", "Pause an agent: messages queue, nothing runs", "paused"),
		newAgentsStateCmd(lookupEnv, "resume", "Resume a paused agent; queued messages start running", "resumed"),
		newAgentsSendCmd(lookupEnv),
	)
	return cmd
}

func newAgentsListCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return newListCmd(lookupEnv, listCommand[agentView]{
		field: "agents", path: "/api/agents",
		short:   "List the agents of the scope",
		example: "  openintern agents list\n  AGENT_ORG_ID=acme openintern agents list --json",
		header:  "AGENT\tNAME\tSTATE\tUNREAD\tMODEL",
		row: func(a agentView) string {
			return fmt.Sprintf("%s\t%s\t%s\t%d\t%s", a.ID, truncate(a.Name, 40), a.State, a.Unread, orDefault(a.Model, "(default)"))
		},
	})
}

func newAgentsCreateCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create [AGENT_ID]",
		Short: "Create an agent",
		Long:  "Create an agent. Without AGENT_ID the id is made from --name; without --name the id is the name.",
		Example: "  openintern agents create writer --name Writer --prompt \"You write haiku.\"\n" +
			"  openintern agents create --name \"Research Lead\" --tool read_file --tool export_trace",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			fs := cmd.Flags()
			body := map[string]any{}
			name, _ := fs.GetString("name")
			if len(args) == 1 {
				body["agent_id"] = args[0]
				if name == "" {
					name = args[0]
				}
			}
			if name == "" {
				return errors.New("give an AGENT_ID or --name")
			}
			body["name"] = name
			if fs.Changed("prompt") {
				body["system_prompt"], _ = fs.GetString("prompt")
			}
			if fs.Changed("model") {
				body["model"], _ = fs.GetString("model")
			}
			if fs.Changed("tool") {
				body["tools"], _ = fs.GetStringSlice("tool")
			}
			if fs.Changed("skill") {
				body["skills"], _ = fs.GetStringSlice("skill")
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodPost, "/api/agents", body, &raw); err != nil {
				var ae *apiError
				if errors.As(err, &ae) && ae.Status == http.StatusConflict {
					return fmt.Errorf("agent %v already exists (in %s)", body["agent_id"], opts.scopeHint())
				}
				return fmt.Errorf("create agent: %w", err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				return writeLine(out, raw)
			}
			var a agentView
			if err := json.Unmarshal(raw, &a); err != nil {
				return fmt.Errorf("decode agent: %w", err)
			}
			fmt.Fprintf(out, "created agent %s (%s)\nsend it work with: openintern agents send %s \"…\"\n", a.ID, a.Name, a.ID)
			return nil
		},
	}
	cmd.Flags().String("name", "", "display name")
	cmd.Flags().String("prompt", "", "system prompt")
	cmd.Flags().String("model", "", "model name (default: the daemon's LLM_MODEL)")
	cmd.Flags().StringSlice("tool", nil, "allowed tool; repeat or comma-separate (default: all)")
	cmd.Flags().StringSlice("skill", nil, "granted skill (see openintern skills list); repeat or comma-separate")
	return cmd
}

func newAgentsShowCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return newShowCmd(lookupEnv, showCommand[agentView]{
		use: "show AGENT_ID", short: "Show one agent", noun: "agent",
		example:  "  openintern agents show main\n  openintern agents show writer --json",
		path:     agentPath,
		notFound: (*apiClient).agentNotFound,
		print:    func(cmd *cobra.Command, st style, a agentView) { printAgent(cmd.OutOrStdout(), st, a) },
	})
}

func printAgent(w io.Writer, st style, a agentView) {
	tools := "(all)"
	if len(a.Tools) > 0 {
		tools = strings.Join(a.Tools, ", ")
	}
	model := a.Model
	if model == "" {
		model = "(daemon default)"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"agent", a.ID}, {"name", a.Name}, {"state", a.State}, {"unread", fmt.Sprint(a.Unread)},
		{"model", model}, {"tools", tools}, {"skills", orDefault(strings.Join(a.Skills, ", "), "(none)")},
		{"created", a.CreatedAt.Local().Format(time.DateTime)}, {"updated", a.UpdatedAt.Local().Format(time.DateTime)},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", st.dim(kv[0]), kv[1])
	}
	_ = tw.Flush()
	if a.SystemPrompt != "" {
		fmt.Fprintf(w, "%s\n%s\n", st.dim("system prompt"), a.SystemPrompt)
	}
}

func newAgentsStateCmd(lookupEnv func(string) (string, bool), action, short, done string) *cobra.Command {
	return &cobra.Command{
		Use:     action + " AGENT_ID",
		Short:   short,
		Example: "  openintern agents " + action + " writer",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var resp struct {
				AgentID string `json:"agent_id"`
				State   string `json:"state"`
			}
			if err := c.do(cmd.Context(), http.MethodPost, agentPath(args[0])+"/"+action, nil, &resp); err != nil {
				return c.agentNotFound(args[0], fmt.Errorf("%s agent %s: %w", action, args[0], err))
			}
			if opts.JSON {
				return writeJSON(cmd.OutOrStdout(), resp)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s agent %s (state: %s)\n", done, resp.AgentID, resp.State)
			return nil
		},
	}
}

func newAgentsSendCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "send AGENT_ID MESSAGE",
		Short: "Put a message in an agent's inbox",
		Long: "Put a message in an agent's durable inbox (answered once it is stored). The agent drains\n" +
			"every unread message into its next run; watch it with the web page or the agent stream.",
		Example: "  openintern agents send writer \"draft a haiku about rain\"\n" +
			"  openintern agents send main \"read file notes.txt\" --session demo --json",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			session, _ := cmd.Flags().GetString("session")
			body := map[string]string{"content": args[1]}
			if session != "" {
				body["session_key"] = session
			}
			var resp struct {
				MessageID string `json:"message_id"`
				AgentID   string `json:"agent_id"`
				Status    string `json:"status"`
				Seq       int64  `json:"seq"`
			}
			if err := c.do(cmd.Context(), http.MethodPost, agentPath(args[0])+"/messages", body, &resp); err != nil {
				return c.agentNotFound(args[0], fmt.Errorf("send to agent %s: %w", args[0], err))
			}
			if opts.JSON {
				return writeJSON(cmd.OutOrStdout(), resp)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s for agent %s\n", resp.MessageID, resp.Status, resp.AgentID)
			return nil
		},
	}
	cmd.Flags().String("session", "", "session key (default \"default\")")
	return cmd
}
