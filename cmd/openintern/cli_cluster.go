package main

import (
	"fmt"
	"net/http"
	"strconv"
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
