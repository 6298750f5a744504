package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/mark3labs/mcp-go/server"
	"github.com/spf13/cobra"

	"github.com/openintern/openintern/mcpserve"
)

// newMCPCmd serves OpenIntern's MCP tools on stdio for clients that start a
// command (Claude Desktop, IDEs); every tool is a call of the daemon's API
// with this command's token and scope.
func newMCPCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve OpenIntern's tools to an MCP client on stdio, through a running daemon",
		Long: "An MCP server on stdin/stdout whose tools (list_agents, send_message, get_run_events,\n" +
			"read_blackboard, write_blackboard, search_memory, send_group_message) act on the daemon at\n" +
			"OPENINTERN_URL as OPENINTERN_TOKEN (or, with auth off, the scope of AGENT_ORG_ID/AGENT_USER_ID).\n" +
			"The daemon also serves the same tools over streamable HTTP at /mcp.",
		Example: `  {"mcpServers": {"openintern": {"command": "openintern", "args": ["mcp"],
     "env": {"OPENINTERN_URL": "http://127.0.0.1:3000", "OPENINTERN_TOKEN": "oi_..."}}}}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			header := http.Header{}
			for k, v := range map[string]string{"x-org-id": c.opts.Org, "x-user-id": c.opts.User, "x-project-id": c.opts.Project} {
				if v != "" {
					header.Set(k, v)
				}
			}
			if c.opts.Token != "" {
				header.Set("Authorization", "Bearer "+c.opts.Token)
			}
			header.Set("User-Agent", "openintern-mcp/"+version)
			api := &mcpserve.API{BaseURL: c.opts.URL, HTTP: c.http,
				Header: func(context.Context) http.Header { return header.Clone() }}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			err = server.NewStdioServer(mcpserve.NewServer(api)).Listen(ctx, cmd.InOrStdin(), cmd.OutOrStdout())
			if errors.Is(err, context.Canceled) || ctx.Err() != nil {
				return nil
			}
			return err
		},
	}
	addClientFlags(cmd.Flags())
	cmd.AddCommand(newMCPServersCmd(lookupEnv))
	return cmd
}
