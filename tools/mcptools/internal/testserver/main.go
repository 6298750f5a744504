// Command testserver is a small stdio MCP server for the tests of mcptools:
// the description of its "greet" tool comes from MCP_TEST_DESCRIPTION, so a
// test can change a tool's definition between two starts; "pid" tells its
// process id, so a test can kill it; "add_tool" adds a tool at run time,
// which sends notifications/tools/list_changed; "block" blocks until the
// call is cancelled.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

func main() {
	s := server.NewMCPServer("testserver", "1.0.0", server.WithToolCapabilities(true))
	desc := os.Getenv("MCP_TEST_DESCRIPTION")
	if desc == "" {
		desc = "Greets someone."
	}
	s.AddTool(mcp.NewTool("greet", mcp.WithDescription(desc), mcp.WithString("name", mcp.Required(), mcp.Description("who to greet"))),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("hello, " + req.GetString("name", "?")), nil
		})
	s.AddTool(mcp.NewTool("pid", mcp.WithDescription("Tells the server's process id."), mcp.WithReadOnlyHintAnnotation(true)),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(strconv.Itoa(os.Getpid())), nil
		})
	// bare gives no annotations at all (mcp.NewTool gives every tool some).
	s.AddTool(mcp.Tool{Name: "bare", Description: "Has no annotations.", InputSchema: mcp.ToolInputSchema{Type: "object"}},
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("bare"), nil
		})
	s.AddTool(mcp.NewTool("fail", mcp.WithDescription("Always fails.")),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultError("it failed on purpose"), nil
		})
	s.AddTool(mcp.NewTool("add_tool", mcp.WithDescription("Adds a tool named by the argument."), mcp.WithString("name", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			name := req.GetString("name", "")
			s.AddTool(mcp.NewTool(name, mcp.WithDescription("Added at run time.")),
				func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					return mcp.NewToolResultText("I am " + name), nil
				})
			return mcp.NewToolResultText("added " + name), nil
		})
	s.AddTool(mcp.NewTool("block", mcp.WithDescription("Creates the file named by the argument, then blocks until cancelled."), mcp.WithString("started", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if err := os.WriteFile(req.GetString("started", ""), nil, 0o600); err != nil {
				return nil, err
			}
			<-ctx.Done()
			return mcp.NewToolResultText("cancelled"), nil
		})
	if err := server.ServeStdio(s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
