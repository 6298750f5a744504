package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// listCommand describes a "NOUN list" command: every item of a paged API
// list, as JSON ({<field>: […], total}) or as a table.
type listCommand[T any] struct {
	field   string // the list's field in the API's answer and in --json: "roles"
	path    string // the API path: "/api/roles"
	short   string
	example string
	empty   string // printed instead of a table when there is nothing; "" prints the bare header
	header  string // tab-separated column titles
	row     func(v T) string
}

func newListCmd[T any](lookupEnv func(string) (string, bool), l listCommand[T]) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   l.short,
		Example: l.example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			items, err := c.listAll(cmd.Context(), l.path, l.field)
			if err != nil {
				return fmt.Errorf("list %s: %w", l.field, err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				return writeJSON(out, map[string]any{l.field: items, "total": len(items)})
			}
			if len(items) == 0 && l.empty != "" {
				fmt.Fprintln(out, l.empty)
				return nil
			}
			st := newStyle(out, lookupEnv)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, st.bold(l.header))
			for _, raw := range items {
				var v T
				if err := json.Unmarshal(raw, &v); err != nil {
					return fmt.Errorf("decode %s: %w", l.field, err)
				}
				fmt.Fprintln(tw, l.row(v))
			}
			return tw.Flush()
		},
	}
}

// showCommand describes a "NOUN show ID" command: one item, as the API's
// JSON or printed for people.
type showCommand[T any] struct {
	use, short, example string
	noun                string // for errors: "agent"
	path                func(id string) string
	notFound            func(c *apiClient, id string, err error) error
	complete            cobra.CompletionFunc
	print               func(cmd *cobra.Command, st style, v T)
}

func newShowCmd[T any](lookupEnv func(string) (string, bool), s showCommand[T]) *cobra.Command {
	return &cobra.Command{
		Use:               s.use,
		Aliases:           []string{"get"},
		Short:             s.short,
		Example:           s.example,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: s.complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), "GET", s.path(args[0]), nil, &raw); err != nil {
				return s.notFound(c, args[0], err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				return writeLine(out, raw)
			}
			var v T
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("decode %s: %w", s.noun, err)
			}
			s.print(cmd, newStyle(out, lookupEnv), v)
			return nil
		},
	}
}
