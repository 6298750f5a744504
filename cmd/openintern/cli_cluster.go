package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/httpapi"
)

func newClusterCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the daemons sharing the store, their load and the scope's leases (admin)",
		Long: "Shows every daemon (node) that reported to the store recently: its address, version, start,\n" +
			"last heartbeat, whether it is live or draining, the agents and groups it is working for and the\n" +
			"leases it holds; then which node owns each of the scope's agents and group runs.",
		Example: "  openintern cluster\n  openintern cluster --json\n  openintern cluster --url http://node2:3000",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var st httpapi.ClusterStatus
			if err := c.do(cmd.Context(), http.MethodGet, "/api/cluster", nil, &st); err != nil {
				return fmt.Errorf("cluster: %w", err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				return writeJSON(out, st)
			}
			s := newStyle(out, lookupEnv)
			now := time.Now()
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, s.bold("NODE\tADDR\tVERSION\tSTATE\tLOAD\tLEASES\tHEARTBEAT\tSTARTED"))
			for _, n := range st.Nodes {
				state := s.green("live")
				switch {
				case !n.Live:
					state = s.red("gone")
				case n.Draining:
					state = s.yellow("draining")
				}
				id := n.ID
				if id == st.NodeID {
					id += " *"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s ago\t%s\n", id, dash(n.Addr), dash(n.Version), state, n.Load, n.Leases,
					ago(now, n.HeartbeatAt), n.StartedAt.Local().Format(time.DateTime))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(out, s.dim("* the node that answered"))
			if len(st.Leases) == 0 {
				fmt.Fprintln(out, "\nNo agent or group of this scope is owned by a node now.")
				return nil
			}
			fmt.Fprintln(out)
			tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, s.bold("KIND\tID\tNODE\tEPOCH\tEXPIRES IN"))
			for _, l := range st.Leases {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", l.Kind, l.Key, l.NodeID, l.Epoch, l.ExpiresAt.Sub(now).Round(time.Second))
			}
			return tw.Flush()
		},
	}
	addClientFlags(cmd.PersistentFlags())
	return cmd
}

// ago is how long before now t was, to the second.
func ago(now, t time.Time) string {
	return strconv.FormatFloat(max(0, now.Sub(t).Seconds()), 'f', 0, 64) + "s"
}

// healthTimeout bounds `openintern health`: a probe that hangs is a failure.
const healthTimeout = 5 * time.Second

// newHealthCmd is a probe for images without a shell or curl (the
// distroless one): an exec-form HEALTHCHECK or Kubernetes exec probe runs it.
func newHealthCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Probe a daemon: exit 0 when /readyz (or /healthz with --live) answers 200, else 1",
		Long: "Asks the daemon at --url (else OPENINTERN_URL, else http://127.0.0.1:$PORT) whether it is ready:\n" +
			"the store answers and the node is not draining. --live only asks whether the process answers.\n" +
			"For container health checks where there is no shell or curl.",
		Example: "  openintern health\n  openintern health --live --url http://127.0.0.1:3000",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			base, _ := cmd.Flags().GetString("url")
			if base == "" {
				base, _ = lookupEnv("OPENINTERN_URL")
			}
			if base == "" {
				port, _ := lookupEnv("PORT")
				if port == "" {
					port = "3000"
				}
				base = "http://127.0.0.1:" + port
			}
			path := "/readyz"
			if live, _ := cmd.Flags().GetBool("live"); live {
				path = "/healthz"
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), healthTimeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+path, nil)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("health: %w", err)}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("health: %w", err)}
			}
			defer func() { _ = resp.Body.Close() }()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			if resp.StatusCode != http.StatusOK {
				return &exitError{code: 1, err: fmt.Errorf("health: %s answered %d: %s", path, resp.StatusCode, strings.TrimSpace(string(body)))}
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return nil
		},
	}
	cmd.Flags().String("url", "", "daemon URL (OPENINTERN_URL; default http://127.0.0.1:$PORT)")
	cmd.Flags().Bool("live", false, "check liveness (/healthz) instead of readiness (/readyz)")
	return cmd
}
