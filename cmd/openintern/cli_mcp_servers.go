package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/tools/mcptools"
)

// newMCPServersCmd is `openintern mcp servers`: the MCP servers the scope's
// agents may use, and the HTTP servers an admin adds for the scope. It hangs
// under `openintern mcp`, which itself still serves MCP on stdio.
func newMCPServersCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "servers",
		Aliases: []string{"server"},
		Short:   "List, add, show and remove the MCP servers whose tools the scope's agents may use",
		Long: "The config file's servers (source config) serve every scope; an admin adds HTTP servers for\n" +
			"the scope (org and project) over the API (source tenant). A header value given with --header is\n" +
			"sealed by the daemon and never shown again; --header-env names an OPENINTERN_MCP_SECRET_*\n" +
			"variable of the daemon instead. Tools are granted as <server>__<tool> or <server>__*.",
		Example: "  openintern mcp servers list\n" +
			"  openintern mcp servers add docs https://mcp.example.com/mcp --header 'Authorization=Bearer xyz'\n" +
			"  openintern mcp servers add wiki https://wiki.example.com/sse --transport sse --header-env X-Key=OPENINTERN_MCP_SECRET_WIKI\n" +
			"  openintern mcp servers show docs\n" +
			"  openintern mcp servers remove docs",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(cmd.PersistentFlags())
	cmd.AddCommand(newMCPServersListCmd(lookupEnv), newMCPServersAddCmd(lookupEnv), newMCPServersShowCmd(lookupEnv), newMCPServersRemoveCmd(lookupEnv))
	return cmd
}

func newMCPServersListCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List the MCP servers of the scope and the config file", Args: cobra.NoArgs,
		Example: "  openintern mcp servers list\n  openintern mcp servers list --json | jq -r '.servers[] | select(.source == \"tenant\") | .name'",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodGet, "/api/mcp/servers", nil, &raw); err != nil {
				return fmt.Errorf("list mcp servers: %w", err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				return writeLine(out, raw)
			}
			var list struct {
				Servers []mcptools.ServerStatus `json:"servers"`
			}
			if err := json.Unmarshal(raw, &list); err != nil {
				return fmt.Errorf("decode mcp servers: %w", err)
			}
			if len(list.Servers) == 0 {
				fmt.Fprintln(out, "no MCP servers; an admin adds one with: openintern mcp servers add NAME URL")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSOURCE\tSTATUS\tTRANSPORT\tTOOLS\tURL")
			for _, s := range list.Servers {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, s.Source, s.Status, s.Transport, len(s.Tools), orDefault(s.URL, "-"))
			}
			return tw.Flush()
		},
	}
}

func newMCPServersAddCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "add NAME URL",
		Short: "Add an HTTP MCP server for the scope (admin)",
		Example: "  openintern mcp servers add docs https://mcp.example.com/mcp --header 'Authorization=Bearer xyz'\n" +
			"  openintern mcp servers add wiki https://wiki.example.com/sse --transport sse --header-env X-Key=OPENINTERN_MCP_SECRET_WIKI",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			fs := cmd.Flags()
			headers := map[string]any{}
			sealed, _ := fs.GetStringArray("header")
			for _, kv := range sealed {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--header %q: want NAME=VALUE", cut(kv))
				}
				headers[k] = v
			}
			envs, _ := fs.GetStringArray("header-env")
			for _, kv := range envs {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" || v == "" {
					return fmt.Errorf("--header-env %q: want NAME=OPENINTERN_MCP_SECRET_<NAME>", kv)
				}
				headers[k] = map[string]string{"env": v}
			}
			body := map[string]any{"name": args[0], "url": args[1]}
			if t, _ := fs.GetString("transport"); t != "" {
				body["transport"] = t
			}
			if len(headers) > 0 {
				body["headers"] = headers
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodPost, "/api/mcp/servers", body, &raw); err != nil {
				return fmt.Errorf("add mcp server: %w", err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				return writeLine(out, raw)
			}
			fmt.Fprintf(out, "added MCP server %s (%s); it starts when an agent of the scope first uses it\ngrant its tools with: %s__*\n", args[0], opts.scopeHint(), args[0])
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringArray("header", nil, "NAME=VALUE: a request header, sealed by the daemon (repeat for more)")
	fs.StringArray("header-env", nil, "NAME=OPENINTERN_MCP_SECRET_X: a header read from the daemon's environment (repeat for more)")
	fs.String("transport", "", "streamable, sse or auto (default: auto, streamable HTTP falling back to SSE)")
	return cmd
}

// cut shortens what may be a secret for an error message: the name only.
func cut(kv string) string {
	if k, _, ok := strings.Cut(kv, "="); ok {
		return k + "=…"
	}
	if len(kv) > 3 {
		return kv[:3] + "…"
	}
	return kv
}

func newMCPServersShowCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME", Short: "Show a server's status, tools and their pins", Args: cobra.ExactArgs(1),
		Example: "  openintern mcp servers show docs\n  openintern mcp servers show docs --json | jq '.tools[] | select(.pin == \"changed\")'",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodGet, "/api/mcp/servers/"+url.PathEscape(args[0]), nil, &raw); err != nil {
				return fmt.Errorf("show mcp server: %w", err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				return writeLine(out, raw)
			}
			var s mcptools.ServerStatus
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("decode mcp server: %w", err)
			}
			fmt.Fprintf(out, "%s (%s): %s over %s, %d restarts\n", s.Name, s.Source, s.Status, orDefault(s.Transport, "-"), s.Restarts)
			if s.URL != "" {
				fmt.Fprintf(out, "url: %s\n", s.URL)
			}
			for _, h := range s.Headers {
				fmt.Fprintf(out, "header %s: %s %s\n", h.Name, h.Kind, h.Env)
			}
			if s.LastError != "" {
				fmt.Fprintf(out, "last error: %s\n", s.LastError)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOOL\tENABLED\tPIN\tHASH")
			for _, t := range s.Tools {
				fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", t.ToolName, t.Enabled, t.Pin, truncate(t.Hash, 12))
			}
			return tw.Flush()
		},
	}
}

func newMCPServersRemoveCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return &cobra.Command{
		Use: "remove NAME", Aliases: []string{"rm", "delete"}, Short: "Remove one of the scope's servers and stop it (admin)", Args: cobra.ExactArgs(1),
		Example: "  openintern mcp servers remove docs",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			if err := c.do(cmd.Context(), http.MethodDelete, "/api/mcp/servers/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return fmt.Errorf("remove mcp server: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed MCP server %s (%s)\n", args[0], opts.scopeHint())
			return nil
		},
	}
}
