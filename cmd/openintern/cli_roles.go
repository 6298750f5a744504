package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/store"
)

// roleView is a role as the API shows it: the store's own type, whose JSON
// is the API's.
type roleView = store.Role

func newRolesCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "roles",
		Aliases: []string{"role"},
		Short:   "List and create roles: the jobs agents do as members of a group",
		Long: "A role is a job in a team: a prompt, model and tool permission an agent works with when it\n" +
			"acts as a member of a group. Exactly one member of a group has a lead role (--lead); the\n" +
			"lead hands out the task and decides from the others' proposals.",
		Example: "  openintern roles list\n" +
			"  openintern roles create researcher --prompt \"You dig up facts.\" --tools read_file,memory_search\n" +
			"  openintern roles create \"Tech Lead\" --id lead --lead",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(cmd.PersistentFlags())
	cmd.AddCommand(newRolesListCmd(lookupEnv), newRolesCreateCmd(lookupEnv))
	return cmd
}

// listAll pages through a list endpoint (answering {<field>: […], total})
// and returns every item as the API sent it.
func (c *apiClient) listAll(ctx context.Context, path, field string) ([]json.RawMessage, error) {
	var all []json.RawMessage
	for page := 1; ; page++ {
		var resp map[string]json.RawMessage
		q := url.Values{"page": {fmt.Sprint(page)}, "limit": {"200"}}
		if err := c.do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &resp); err != nil {
			return nil, err
		}
		var items []json.RawMessage
		var total int
		if err := json.Unmarshal(resp[field], &items); err != nil {
			return nil, fmt.Errorf("decode %s: %w", field, err)
		}
		if err := json.Unmarshal(resp["total"], &total); err != nil {
			return nil, fmt.Errorf("decode %s total: %w", field, err)
		}
		all = append(all, items...)
		if len(items) == 0 || len(all) >= total {
			break
		}
	}
	if all == nil {
		all = []json.RawMessage{}
	}
	return all, nil
}

func newRolesListCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return newListCmd(lookupEnv, listCommand[roleView]{
		field: "roles", path: "/api/roles",
		short:   "List the roles of the scope",
		example: "  openintern roles list\n  openintern roles list --json | jq -r '.roles[].role_id'",
		empty:   "no roles yet; create one with: openintern roles create NAME",
		header:  "ROLE\tNAME\tLEAD\tMODEL\tTOOLS",
		row: func(r roleView) string {
			lead := ""
			if r.IsLead {
				lead = "★"
			}
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", r.ID, truncate(r.Name, 40), lead, orDefault(r.Model, "(agent's)"), roleTools(r.AllowedTools))
		},
	})
}

// roleTools renders a role's tool permission.
func roleTools(tools []string) string {
	switch {
	case tools == nil:
		return "(agent's)"
	case len(tools) == 0:
		return "(none)"
	}
	return truncate(strings.Join(tools, ","), 60)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func newRolesCreateCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a role",
		Long: "Create a role. Its id is --id, or made from NAME (\"Tech Lead\" → tech-lead). Without --tools\n" +
			"or --no-tools a member with the role keeps its agent's tools.",
		Example: "  openintern roles create researcher --prompt \"You dig up facts.\" --tools read_file\n" +
			"  openintern roles create critic --description \"Finds the weak spots\" --no-tools\n" +
			"  openintern roles create \"Tech Lead\" --id lead --lead --model gpt-4o",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			fs := cmd.Flags()
			body := map[string]any{"name": args[0]}
			for flag, field := range map[string]string{"id": "role_id", "description": "description", "prompt": "system_prompt", "model": "model"} {
				if fs.Changed(flag) {
					body[field], _ = fs.GetString(flag)
				}
			}
			if fs.Changed("tools") {
				tools, _ := fs.GetStringSlice("tools")
				if len(tools) == 0 {
					return errors.New("--tools needs tool names; use --no-tools for a role without tools")
				}
				body["allowed_tools"] = tools
			}
			if noTools, _ := fs.GetBool("no-tools"); noTools {
				body["allowed_tools"] = []string{}
			}
			if fs.Changed("skill") {
				body["skills"], _ = fs.GetStringSlice("skill")
			}
			if lead, _ := fs.GetBool("lead"); lead {
				body["is_lead"] = true
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodPost, "/api/roles", body, &raw); err != nil {
				var ae *apiError
				if errors.As(err, &ae) && ae.Code == "conflict" {
					id, _ := body["role_id"].(string)
					if id == "" {
						id = args[0]
					}
					return fmt.Errorf("role %s already exists (in %s)", id, opts.scopeHint())
				}
				return fmt.Errorf("create role: %w", err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				return writeLine(out, raw)
			}
			var r roleView
			if err := json.Unmarshal(raw, &r); err != nil {
				return fmt.Errorf("decode role: %w", err)
			}
			kind := "role"
			if r.IsLead {
				kind = "lead role"
			}
			fmt.Fprintf(out, "created %s %s (%s, tools: %s)\nuse it with: openintern groups create NAME --member AGENT:%s\n", kind, r.ID, r.Name, roleTools(r.AllowedTools), r.ID)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.String("id", "", "role id (default: made from NAME)")
	fs.String("description", "", "what the role does; members see it in their task")
	fs.String("prompt", "", "system prompt of a member in this role")
	fs.String("model", "", "model of a member in this role (default: the agent's)")
	fs.StringSlice("tools", nil, "tools the role allows; comma-separate or repeat (default: the agent's)")
	fs.Bool("no-tools", false, "the role allows no tools")
	fs.Bool("lead", false, "the lead role: hands out the task and decides")
	fs.StringSlice("skill", nil, "skill granted to members in this role, besides their own; repeat or comma-separate")
	cmd.MarkFlagsMutuallyExclusive("tools", "no-tools")
	return cmd
}
