package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/store"
)

// groupDetail is a group with its members, as GET /api/groups/:id and
// POST /api/groups answer.
type groupDetail struct {
	ID          string              `json:"group_id"`
	Name        string              `json:"name"`
	Description string              `json:"description"`
	Members     []store.GroupMember `json:"members"`
	MemberCount int                 `json:"member_count"`
	LeadAgentID string              `json:"lead_agent_id"`
	CreatedAt   time.Time           `json:"created_at"`
}

// groupSummary is a group as GET /api/groups lists it (members is a count).
type groupSummary = store.Group

// boardEntry is one blackboard entry.
type boardEntry struct {
	ID        string    `json:"memory_id"`
	Kind      string    `json:"kind"`
	Author    string    `json:"author"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
}

// boardHit is one blackboard search result.
type boardHit struct {
	ID      string   `json:"id"`
	Snippet string   `json:"snippet"`
	Score   float64  `json:"score"`
	Kind    string   `json:"kind"`
	Author  string   `json:"author"`
	FoundBy []string `json:"found_by"`
}

// groupRunResponse is the answer of POST /api/groups/:id/runs.
type groupRunResponse struct {
	RunID      string    `json:"run_id"`
	GroupID    string    `json:"group_id"`
	Status     string    `json:"status"`
	Mode       string    `json:"mode"`
	SessionKey string    `json:"session_key"`
	CreatedAt  time.Time `json:"created_at"`
}

var (
	groupModes = []string{"serial", "parallel"}
	boardKinds = []string{"fact", "proposal", "decision", "todo"}
)

func newGroupsCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "groups",
		Aliases: []string{"group"},
		Short:   "List, create and run groups: teams of agents, each member with a role",
		Long: "A group is a team of agents, each member with a role (see `openintern roles`); one member has\n" +
			"the lead role. A group run gives the task to the members (one after another, or in parallel),\n" +
			"then asks the lead to decide from their proposals. Proposals and decisions land on the\n" +
			"group's blackboard, its shared memory.",
		Example: "  openintern groups create review --member researcher:researcher --member critic:critic --member lead:lead\n" +
			"  openintern groups run review \"should we launch on Tuesday?\" --stream\n" +
			"  openintern groups blackboard review --kind decision",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(cmd.PersistentFlags())
	cmd.AddCommand(
		newGroupsListCmd(lookupEnv),
		newGroupsCreateCmd(lookupEnv),
		newGroupsShowCmd(lookupEnv),
		newGroupsAddMemberCmd(lookupEnv),
		newGroupsRunCmd(lookupEnv),
		newGroupsBlackboardCmd(lookupEnv),
	)
	return cmd
}

func groupPath(id string) string { return "/api/groups/" + url.PathEscape(id) }

// groupNotFound turns the API's 404 into a message naming the id and the scope.
func (c *apiClient) groupNotFound(groupID string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("group %s not found (in %s)", groupID, c.opts.scopeHint())
	}
	return err
}

// completeGroupIDs completes a GROUP argument with the ids of the scope's
// groups. The daemon is asked with a short deadline; when it cannot answer
// there is simply nothing to offer.
func completeGroupIDs(lookupEnv func(string) (string, bool)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, _, err := clientFor(cmd, lookupEnv)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
		defer cancel()
		groups, err := c.listAll(ctx, "/api/groups", "groups")
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, raw := range groups {
			var g groupSummary
			if json.Unmarshal(raw, &g) == nil && strings.HasPrefix(g.ID, toComplete) {
				out = append(out, cobra.CompletionWithDesc(g.ID, g.Name))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func newGroupsListCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return newListCmd(lookupEnv, listCommand[groupSummary]{
		field: "groups", path: "/api/groups",
		short:   "List the groups of the scope",
		example: "  openintern groups list\n  openintern groups list --json | jq -r '.groups[].group_id'",
		empty:   "no groups yet; create one with: openintern groups create NAME --member AGENT:ROLE …",
		header:  "GROUP\tNAME\tMEMBERS\tCREATED",
		row: func(g groupSummary) string {
			return fmt.Sprintf("%s\t%s\t%d\t%s", g.ID, truncate(g.Name, 40), g.Members, g.CreatedAt.Local().Format(time.DateTime))
		},
	})
}

// parseMember splits AGENT:ROLE.
func parseMember(spec string) (map[string]string, error) {
	agent, role, ok := strings.Cut(spec, ":")
	agent, role = strings.TrimSpace(agent), strings.TrimSpace(role)
	if !ok || agent == "" || role == "" || strings.Contains(role, ":") {
		return nil, fmt.Errorf("a member is AGENT:ROLE (an agent id and a role id), not %q", spec)
	}
	return map[string]string{"agent_id": agent, "role_id": role}, nil
}

func newGroupsCreateCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a group, optionally with its members",
		Long: "Create a group. Its id is --id, or made from NAME (\"Launch Review\" → launch-review). Each\n" +
			"--member AGENT:ROLE adds an existing agent in an existing role; exactly one role must be a\n" +
			"lead role before the group can run.",
		Example: "  openintern groups create review --member researcher:researcher --member critic:critic --member lead:lead\n" +
			"  openintern groups create \"Launch Review\" --id launch --description \"Go/no-go calls\"",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			fs := cmd.Flags()
			body := map[string]any{"name": args[0]}
			if fs.Changed("id") {
				body["group_id"], _ = fs.GetString("id")
			}
			if fs.Changed("description") {
				body["description"], _ = fs.GetString("description")
			}
			specs, _ := fs.GetStringSlice("member")
			members := []map[string]string{}
			for _, spec := range specs {
				m, err := parseMember(spec)
				if err != nil {
					return err
				}
				members = append(members, m)
			}
			body["members"] = members
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodPost, "/api/groups", body, &raw); err != nil {
				var ae *apiError
				if errors.As(err, &ae) && ae.Code == "conflict" {
					id, _ := body["group_id"].(string)
					if id == "" {
						id = args[0]
					}
					return fmt.Errorf("group %s already exists (in %s)", id, opts.scopeHint())
				}
				return fmt.Errorf("create group: %w", err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				return writeLine(out, raw)
			}
			var g groupDetail
			if err := json.Unmarshal(raw, &g); err != nil {
				return fmt.Errorf("decode group: %w", err)
			}
			fmt.Fprintf(out, "created group %s (%s) with %s", g.ID, g.Name, plural(len(g.Members), "member"))
			if g.LeadAgentID != "" {
				fmt.Fprintf(out, ", lead %s", g.LeadAgentID)
			}
			fmt.Fprintln(out)
			switch {
			case len(g.Members) == 0:
				fmt.Fprintf(out, "add members with: openintern groups add-member %s AGENT:ROLE\n", g.ID)
			case g.LeadAgentID == "":
				fmt.Fprintf(out, "it needs a member with a lead role before it can run: openintern groups add-member %s AGENT:ROLE\n", g.ID)
			default:
				fmt.Fprintf(out, "give it work with: openintern groups run %s \"…\" --stream\n", g.ID)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.String("id", "", "group id (default: made from NAME)")
	fs.String("description", "", "what the group is for")
	fs.StringSlice("member", nil, "member as AGENT:ROLE; repeat or comma-separate")
	return cmd
}

func newGroupsShowCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return newShowCmd(lookupEnv, showCommand[groupDetail]{
		use: "show GROUP", short: "Show a group and its members, the lead marked ★", noun: "group",
		example:  "  openintern groups show review\n  openintern groups show review --json | jq .members",
		path:     groupPath,
		notFound: (*apiClient).groupNotFound,
		complete: completeGroupIDs(lookupEnv),
		print:    func(cmd *cobra.Command, st style, g groupDetail) { printGroup(cmd.OutOrStdout(), st, g) },
	})
}

func printGroup(w io.Writer, st style, g groupDetail) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	rows := [][2]string{{"group", g.ID}, {"name", g.Name}}
	if g.Description != "" {
		rows = append(rows, [2]string{"about", truncate(g.Description, 100)})
	}
	rows = append(rows, [2]string{"lead", orDefault(g.LeadAgentID, "(none: add a member with a lead role)")},
		[2]string{"created", g.CreatedAt.Local().Format(time.DateTime)})
	for _, kv := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", st.dim(kv[0]), kv[1])
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	if len(g.Members) == 0 {
		fmt.Fprintln(w, "no members yet")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, st.bold("MEMBER\tROLE"))
	for _, m := range g.Members {
		role := m.RoleID
		if m.RoleName != "" && m.RoleName != m.RoleID {
			role += " (" + m.RoleName + ")"
		}
		if m.IsLead {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", m.AgentID, role, st.yellow("★ lead"))
		} else {
			fmt.Fprintf(tw, "%s\t%s\n", m.AgentID, role)
		}
	}
	_ = tw.Flush()
}

func newGroupsAddMemberCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return &cobra.Command{
		Use:               "add-member GROUP AGENT:ROLE…",
		Aliases:           []string{"add"},
		Short:             "Add agents to a group, each in a role",
		Example:           "  openintern groups add-member review critic:critic\n  openintern groups add-member review lead:lead writer:researcher",
		Args:              cobra.MinimumNArgs(2),
		ValidArgsFunction: completeGroupIDs(lookupEnv),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var members []map[string]string
			for _, spec := range args[1:] {
				m, err := parseMember(spec)
				if err != nil {
					return err
				}
				members = append(members, m)
			}
			out := cmd.OutOrStdout()
			for _, m := range members {
				var added store.GroupMember
				if err := c.do(cmd.Context(), http.MethodPost, groupPath(args[0])+"/members", m, &added); err != nil {
					return c.groupNotFound(args[0], fmt.Errorf("add %s to group %s: %w", m["agent_id"], args[0], err))
				}
				if opts.JSON {
					if err := writeJSON(out, added); err != nil {
						return err
					}
					continue
				}
				lead := ""
				if added.IsLead {
					lead = ", the lead"
				}
				fmt.Fprintf(out, "added %s to group %s as %s%s\n", added.AgentID, args[0], orDefault(added.RoleName, added.RoleID), lead)
			}
			return nil
		},
	}
}

func newGroupsRunCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run GROUP TASK",
		Short: "Give a group a task, and optionally follow the team at work",
		Long: "Start a group run (POST /api/groups/:id/runs): the lead hands TASK to each member, the members\n" +
			"answer with proposals, and the lead decides. Without --stream the run id is printed. With\n" +
			"--stream every task, proposal and the decision is printed as it happens (a dropped connection\n" +
			"is resumed), and the exit code is the run's: 0 completed, 1 failed or cancelled, 130 on\n" +
			"Ctrl-C (which cancels the run). TASK \"-\" reads the task from stdin.",
		Example: "  openintern groups run review \"should we launch on Tuesday?\" --stream\n" +
			"  openintern groups run review \"compare the three vendors\" --mode parallel --session vendors\n" +
			"  openintern groups run review - --stream --json < brief.md",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeGroupIDs(lookupEnv),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			groupID, input := args[0], args[1]
			if input == "-" {
				raw, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
				if err != nil {
					return fmt.Errorf("read the task from stdin: %w", err)
				}
				input = string(raw)
			}
			if strings.TrimSpace(input) == "" {
				return errors.New("the task is empty")
			}
			fs := cmd.Flags()
			mode, _ := fs.GetString("mode")
			if mode != "" && mode != "serial" && mode != "parallel" {
				return fmt.Errorf("--mode must be serial or parallel, not %q", mode)
			}
			session, _ := fs.GetString("session")
			stream, _ := fs.GetBool("stream")
			body := map[string]string{"input": input}
			if mode != "" {
				body["mode"] = mode
			}
			if session != "" {
				body["session_key"] = session
			}

			ctx, stop := interruptible(cmd.Context())
			defer stop()
			started := time.Now()
			var created groupRunResponse
			if err := c.do(ctx, http.MethodPost, groupPath(groupID)+"/runs", body, &created); err != nil {
				return c.groupNotFound(groupID, fmt.Errorf("run group %s: %w", groupID, err))
			}
			out := cmd.OutOrStdout()
			if !stream {
				if opts.JSON {
					return writeJSON(out, created)
				}
				fmt.Fprintf(out, "%s %s (group %s, %s)\nfollow it with: openintern tail %s\n",
					created.RunID, created.Status, created.GroupID, created.Mode, created.RunID)
				return nil
			}
			st := newStyle(out, lookupEnv)
			handle := func(ev streamEvent) error {
				if opts.JSON {
					return writeLine(out, ev.Raw)
				}
				if line := teamLine(st, ev.Event); line != "" {
					_, err := fmt.Fprintln(out, line)
					return err
				}
				return nil
			}
			run, err := followRun(ctx, c, created.RunID, handle)
			if err != nil {
				if ctx.Err() != nil && cmd.Context().Err() == nil {
					return interrupted(c, created.RunID, out, false)
				}
				return err
			}
			if !opts.JSON {
				fmt.Fprintln(out, statusLineOf(st, run, time.Since(started), ""))
			}
			return runOutcome(run)
		},
	}
	fs := cmd.Flags()
	fs.String("mode", "", "serial (members one after another, each seeing the work before it; default) or parallel")
	fs.String("session", "", "session key; runs of one session share the members' history (default \"default\")")
	fs.Bool("stream", false, "follow the run: print tasks, proposals and the decision, and exit with the run's status")
	_ = cmd.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions(groupModes, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// teamLine is one readable line for an event of a group run's stream, or ""
// for events not worth a line (the final status line reports the end).
func teamLine(st style, ev store.Event) string {
	p := payloadFields(ev)
	switch ev.Type {
	case "run.started":
		var members []string
		for _, m := range p.Members {
			if m.AgentID != p.Lead {
				members = append(members, m.AgentID)
			}
		}
		return st.dim(fmt.Sprintf("▶ %s run · lead %s · members %s", orDefault(p.Mode, "serial"), p.Lead, strings.Join(members, ", ")))
	case "run.resumed":
		return st.dim("… resumed after a restart")
	case "message.task":
		s := st.cyan("→ task to " + teamWho(p.To, p.Role))
		if p.Purpose != "" && p.Purpose != "work" {
			s += st.dim(": " + p.Purpose)
		}
		return s
	case "message.proposal":
		return st.bold(teamWho(p.From, p.Role)) + " proposes: " + truncate(p.Content, 300)
	case "message.status":
		s := teamWho(p.From, p.Role) + " " + p.Status
		if e := p.errorText(); e != "" {
			s += ": " + truncate(e, 200)
		}
		if p.Status == store.RunCancelled {
			return st.yellow("✗ " + s)
		}
		return st.red("✗ " + s)
	case "message.evidence":
		return st.dim("+ "+p.From+" adds a "+p.Kind+": ") + truncate(p.Content, 200)
	case "blackboard.written":
		if p.Kind == "proposal" || p.Kind == "decision" {
			return "" // announced by message.proposal / message.decision
		}
		return st.dim("✎ "+p.Author+" writes a "+p.Kind+": ") + truncate(p.Text, 200)
	case "message.decision":
		head := st.green("★ decision by "+teamWho(p.From, p.Role)) + ":"
		content := strings.TrimSpace(p.Content)
		if strings.Contains(content, "\n") {
			return head + "\n" + content
		}
		return head + " " + content
	}
	return ""
}

func newGroupsBlackboardCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "blackboard GROUP",
		Aliases: []string{"bb"},
		Short:   "Read, search or post to a group's blackboard (its shared memory)",
		Long: "Print a group's blackboard entries, newest first: the facts, todos, proposals and decisions\n" +
			"of its members. --search finds entries by meaning and keywords; --post writes an entry\n" +
			"(--kind fact by default) as the scope's user. --post - reads the text from stdin.",
		Example: "  openintern groups blackboard review\n" +
			"  openintern groups blackboard review --kind decision --limit 1 --json\n" +
			"  openintern groups blackboard review --search \"launch date\"\n" +
			"  openintern groups blackboard review --post \"Budget is capped at 10k\" --kind fact",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeGroupIDs(lookupEnv),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			groupID := args[0]
			fs := cmd.Flags()
			kind, _ := fs.GetString("kind")
			limit, _ := fs.GetInt("limit")
			if limit < 1 || limit > 200 {
				return fmt.Errorf("--limit must be between 1 and 200, not %d", limit)
			}
			out := cmd.OutOrStdout()
			st := newStyle(out, lookupEnv)
			path := groupPath(groupID) + "/blackboard"

			if fs.Changed("post") {
				text, _ := fs.GetString("post")
				if text == "-" {
					raw, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
					if err != nil {
						return fmt.Errorf("read the entry from stdin: %w", err)
					}
					text = string(raw)
				}
				if strings.TrimSpace(text) == "" {
					return errors.New("the entry is empty")
				}
				body := map[string]string{"text": text}
				if kind != "" {
					body["kind"] = kind
				}
				var raw json.RawMessage
				if err := c.do(cmd.Context(), http.MethodPost, path, body, &raw); err != nil {
					return c.groupNotFound(groupID, fmt.Errorf("post to the blackboard of group %s: %w", groupID, err))
				}
				if opts.JSON {
					return writeLine(out, raw)
				}
				var e boardEntry
				if err := json.Unmarshal(raw, &e); err != nil {
					return fmt.Errorf("decode entry: %w", err)
				}
				fmt.Fprintf(out, "%s posted (%s by %s)\n", e.ID, e.Kind, e.Author)
				return nil
			}

			q := url.Values{}
			if kind != "" {
				q.Set("kind", kind)
			}
			if search, _ := fs.GetString("search"); search != "" {
				q.Set("q", search)
				var resp struct {
					Results []boardHit `json:"results"`
				}
				if err := c.do(cmd.Context(), http.MethodGet, path+"?"+q.Encode(), nil, &resp); err != nil {
					return c.groupNotFound(groupID, fmt.Errorf("search the blackboard of group %s: %w", groupID, err))
				}
				hits := resp.Results
				if hits == nil {
					hits = []boardHit{}
				}
				if len(hits) > limit {
					hits = hits[:limit]
				}
				if opts.JSON {
					return writeJSON(out, map[string]any{"results": hits})
				}
				if len(hits) == 0 {
					fmt.Fprintln(out, "no entries match")
					return nil
				}
				for _, h := range hits {
					fmt.Fprintf(out, "%s %s %s %s %s\n  %s\n", st.bold(h.ID), st.cyan(h.Kind), h.Author,
						st.dim(fmt.Sprintf("%.3f", h.Score)), st.dim("("+strings.Join(h.FoundBy, "+")+")"), truncate(h.Snippet, 200))
				}
				return nil
			}

			if author, _ := fs.GetString("author"); author != "" {
				q.Set("author", author)
			}
			q.Set("limit", strconv.Itoa(limit))
			var resp struct {
				Entries []boardEntry `json:"entries"`
				Total   int          `json:"total"`
			}
			if err := c.do(cmd.Context(), http.MethodGet, path+"?"+q.Encode(), nil, &resp); err != nil {
				return c.groupNotFound(groupID, fmt.Errorf("read the blackboard of group %s: %w", groupID, err))
			}
			if resp.Entries == nil {
				resp.Entries = []boardEntry{}
			}
			if opts.JSON {
				return writeJSON(out, resp)
			}
			if len(resp.Entries) == 0 {
				if len(q) > 1 {
					fmt.Fprintln(out, "no entries match")
				} else {
					fmt.Fprintf(out, "the blackboard of group %s is empty\n", groupID)
				}
				return nil
			}
			for _, e := range resp.Entries {
				fmt.Fprintf(out, "%s %s %s %s\n  %s\n", st.bold(e.ID), st.cyan(e.Kind), e.Author,
					st.dim(e.CreatedAt.Local().Format(time.DateTime)), truncate(e.Text, 300))
			}
			if resp.Total > len(resp.Entries) {
				fmt.Fprintln(out, st.dim(fmt.Sprintf("%d of %d entries, newest first; --limit N for more", len(resp.Entries), resp.Total)))
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.String("kind", "", "only entries of this kind (fact, proposal, decision, todo); with --post the kind to write (default fact)")
	fs.String("author", "", "only entries by this author (an agent id, or user:USER_ID)")
	fs.String("search", "", "find entries by meaning and keywords instead of listing them")
	fs.Int("limit", 20, "at most this many entries (1-200)")
	fs.String("post", "", "write an entry with this text (\"-\": read stdin) instead of reading")
	cmd.MarkFlagsMutuallyExclusive("post", "search")
	cmd.MarkFlagsMutuallyExclusive("post", "author")
	cmd.MarkFlagsMutuallyExclusive("post", "limit")
	cmd.MarkFlagsMutuallyExclusive("search", "author")
	_ = cmd.RegisterFlagCompletionFunc("kind", cobra.FixedCompletions(boardKinds, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
