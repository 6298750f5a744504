package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/store"
)

// newFeishuCmd is `openintern feishu connectors …`: the scope's Feishu
// connectors over the API.
func newFeishuCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	root := &cobra.Command{
		Use:     "feishu",
		Short:   "Feishu (Lark) connectors: documents, wikis and drive folders synced into archival memory",
		Example: "  openintern feishu connectors list\n  openintern feishu connectors add kb --name 'Team wiki' --wiki 7034502641455497244\n  openintern feishu connectors sync kb",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd := &cobra.Command{
		Use:     "connectors",
		Aliases: []string{"connector"},
		Short:   "List, add, show, change and sync the scope's Feishu connectors",
		Example: "  openintern feishu connectors add kb --name KB --wiki SPACE_ID:ROOT_NODE --drive FOLDER_TOKEN --docx DOC_ID\n" +
			"  openintern feishu connectors set kb --enabled=false\n  openintern feishu connectors sync kb && openintern jobs watch JOB_ID",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(root.PersistentFlags())
	root.AddCommand(cmd)

	// show prints a connector (or its raw JSON with --json).
	show := func(cmd *cobra.Command, opts clientOptions, raw json.RawMessage) error {
		out := cmd.OutOrStdout()
		if opts.JSON {
			return writeLine(out, raw)
		}
		var fc store.FeishuConnector
		if err := json.Unmarshal(raw, &fc); err != nil {
			return fmt.Errorf("decode connector: %w", err)
		}
		printConnector(out, fc)
		return nil
	}
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List the scope's connectors", Args: cobra.NoArgs,
		Example: "  openintern feishu connectors list --json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodGet, "/api/feishu/connectors?limit=200", nil, &raw); err != nil {
				return fmt.Errorf("list connectors: %w", err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				return writeLine(out, raw)
			}
			var resp struct {
				Connectors []store.FeishuConnector `json:"connectors"`
			}
			if err := json.Unmarshal(raw, &resp); err != nil {
				return fmt.Errorf("decode connectors: %w", err)
			}
			if len(resp.Connectors) == 0 {
				fmt.Fprintln(out, "no Feishu connectors; an admin adds one with: openintern feishu connectors add ID --name NAME --wiki SPACE_ID")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tENABLED\tSOURCES\tLAST JOB")
			for _, fc := range resp.Connectors {
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", fc.ID, fc.Name, fc.Enabled, sourcesText(fc.Sources), orDefault(fc.LastJobID, "-"))
			}
			return tw.Flush()
		},
	}
	add := &cobra.Command{
		Use: "add ID", Short: "Add a connector (admin)", Args: cobra.ExactArgs(1),
		Example: "  openintern feishu connectors add kb --name KB --wiki SPACE_ID --drive FOLDER_TOKEN",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			name, _ := cmd.Flags().GetString("name")
			if name == "" {
				name = args[0]
			}
			body := map[string]any{"connector_id": args[0], "name": name, "sources": sourcesOf(cmd)}
			if cmd.Flags().Changed("enabled") {
				body["enabled"], _ = cmd.Flags().GetBool("enabled")
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodPost, "/api/feishu/connectors", body, &raw); err != nil {
				return fmt.Errorf("add connector: %w", err)
			}
			return show(cmd, opts, raw)
		},
	}
	set := &cobra.Command{
		Use: "set ID", Short: "Change a connector's name, enabled flag or sources (admin; source flags replace them all)", Args: cobra.ExactArgs(1),
		Example: "  openintern feishu connectors set kb --enabled=false\n  openintern feishu connectors set kb --wiki SPACE_ID --docx DOC_ID",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			body := map[string]any{}
			fs := cmd.Flags()
			if fs.Changed("name") {
				body["name"], _ = fs.GetString("name")
			}
			if fs.Changed("enabled") {
				body["enabled"], _ = fs.GetBool("enabled")
			}
			if fs.Changed("wiki") || fs.Changed("drive") || fs.Changed("docx") {
				body["sources"] = sourcesOf(cmd)
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodPatch, "/api/feishu/connectors/"+url.PathEscape(args[0]), body, &raw); err != nil {
				return fmt.Errorf("change connector: %w", err)
			}
			return show(cmd, opts, raw)
		},
	}
	for _, sc := range []*cobra.Command{add, set} {
		fs := sc.Flags()
		fs.String("name", "", "the connector's name")
		fs.Bool("enabled", true, "synced by the daemon's scheduled polls")
		fs.StringArray("wiki", nil, "SPACE_ID or SPACE_ID:ROOT_NODE: a wiki space's node tree (repeat for more)")
		fs.StringArray("drive", nil, "FOLDER_TOKEN: a drive folder, recursively (repeat for more)")
		fs.StringArray("docx", nil, "DOCUMENT_ID: one docx document (repeat for more)")
	}
	get := &cobra.Command{
		Use: "show ID", Short: "Show a connector", Args: cobra.ExactArgs(1), Example: "  openintern feishu connectors show kb",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodGet, "/api/feishu/connectors/"+url.PathEscape(args[0]), nil, &raw); err != nil {
				return fmt.Errorf("show connector: %w", err)
			}
			return show(cmd, opts, raw)
		},
	}
	sync := &cobra.Command{
		Use: "sync ID", Short: "Queue a sync of a connector (admin); follow it with openintern jobs watch", Args: cobra.ExactArgs(1),
		Example: "  openintern feishu connectors sync kb",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodPost, "/api/feishu/connectors/"+url.PathEscape(args[0])+"/sync", nil, &raw); err != nil {
				return fmt.Errorf("sync connector: %w", err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				return writeLine(out, raw)
			}
			var j store.Job
			if err := json.Unmarshal(raw, &j); err != nil {
				return fmt.Errorf("decode job: %w", err)
			}
			fmt.Fprintf(out, "queued sync %s of %s\nfollow it with: openintern jobs watch %s\n", j.ID, args[0], j.ID)
			return nil
		},
	}
	jobs := &cobra.Command{
		Use: "jobs ID", Short: "List a connector's sync jobs, newest first", Args: cobra.ExactArgs(1),
		Example: "  openintern feishu connectors jobs kb",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodGet, "/api/feishu/connectors/"+url.PathEscape(args[0])+"/jobs?limit=50", nil, &raw); err != nil {
				return fmt.Errorf("list connector jobs: %w", err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				return writeLine(out, raw)
			}
			var resp struct {
				Jobs []store.Job `json:"jobs"`
			}
			if err := json.Unmarshal(raw, &resp); err != nil {
				return fmt.Errorf("decode jobs: %w", err)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tSTATUS\tFOUND\tNEW\tCHANGED\tDELETED\tFAILED\tCREATED")
			for _, j := range resp.Jobs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", j.ID, j.Status, j.Counts.Found, j.Counts.New, j.Counts.Changed,
					j.Counts.Deleted, j.Counts.Failed, j.CreatedAt.Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(list, add, get, set, sync, jobs)
	return root
}

func sourcesOf(cmd *cobra.Command) []store.FeishuSource {
	out := []store.FeishuSource{}
	wikis, _ := cmd.Flags().GetStringArray("wiki")
	for _, w := range wikis {
		space, root, _ := strings.Cut(w, ":")
		out = append(out, store.FeishuSource{Type: store.FeishuSourceWiki, Token: space, RootNode: root})
	}
	drives, _ := cmd.Flags().GetStringArray("drive")
	for _, d := range drives {
		out = append(out, store.FeishuSource{Type: store.FeishuSourceDrive, Token: d})
	}
	docs, _ := cmd.Flags().GetStringArray("docx")
	for _, d := range docs {
		out = append(out, store.FeishuSource{Type: store.FeishuSourceDocx, Token: d})
	}
	return out
}

func sourcesText(srcs []store.FeishuSource) string {
	if len(srcs) == 0 {
		return "-"
	}
	parts := make([]string, len(srcs))
	for i, s := range srcs {
		parts[i] = s.Type + ":" + s.Token
		if s.RootNode != "" {
			parts[i] += ":" + s.RootNode
		}
	}
	return strings.Join(parts, ",")
}

func printConnector(out io.Writer, fc store.FeishuConnector) {
	fmt.Fprintf(out, "%s (%s): enabled %v\nsources: %s\nlast job: %s\n", fc.ID, fc.Name, fc.Enabled, sourcesText(fc.Sources), orDefault(fc.LastJobID, "-"))
}
