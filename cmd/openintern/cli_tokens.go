package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/store"
)

// The tokens commands work on the store directly, not through the daemon, so
// the first admin token of a fresh install can be made before any exists.

func newTokensCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Create, list and revoke API tokens (directly in the store; no daemon needed)",
		Long: "API tokens authenticate API, stream and CLI requests (Authorization: Bearer, OPENINTERN_TOKEN) and sign\n" +
			"in the web console. A token belongs to one org and user, optionally one project, and has a role:\n" +
			"viewer (reads and streams), member (also sends messages, runs, memory and blackboard writes) or\n" +
			"admin (also manages agents, roles, groups and tokens). Its secret is printed once; only a hash is kept.\n" +
			"These commands open the configured store (DATABASE_URL, else the SQLite file in DATA_DIR) directly.",
		Example: "  openintern tokens create --org acme --user alice --role admin --name bootstrap\n" +
			"  openintern tokens create --org acme --user ci --project web --role member --name ci --expires 720h\n" +
			"  openintern tokens list --org acme --user alice\n" +
			"  openintern tokens revoke tok_… --org acme --user alice",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	fs := cmd.PersistentFlags()
	fs.String("data-dir", "", "directory of the embedded store (DATA_DIR)")
	fs.String("database-url", "", "PostgreSQL URL; empty uses embedded SQLite (DATABASE_URL)")
	fs.String("org", "", "org id the tokens belong to (required)")
	fs.String("user", "", "user id the tokens belong to (required)")
	fs.Bool("json", false, "print JSON for scripts instead of text")
	cmd.AddCommand(newTokensCreateCmd(lookupEnv), newTokensListCmd(lookupEnv), newTokensRevokeCmd(lookupEnv))
	return cmd
}

// withTokenStore opens the configured store for fn.
func withTokenStore(cmd *cobra.Command, lookupEnv func(string) (string, bool), fn func(ctx context.Context, ts store.TokenStore, owner store.Scope) error) error {
	cfg, err := loadConfig(cmd, lookupEnv)
	if err != nil {
		return err
	}
	org, _ := cmd.Flags().GetString("org")
	user, _ := cmd.Flags().GetString("user")
	if org == "" || user == "" {
		return &exitError{code: 2, err: fmt.Errorf("--org and --user are required: a token belongs to one org and user")}
	}
	m := &daemon.Main{Config: cfg}
	if cfg.DatabaseURL == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
	}
	logger := newLogger(cmd.ErrOrStderr(), "warn")
	st, _, err := daemon.OpenStore(cmd.Context(), cfg.DatabaseURL, m.SQLitePath(), logger.With("component", "store"))
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	defer func() { _ = st.Close() }()
	ts, ok := st.(store.TokenStore)
	if !ok {
		return fmt.Errorf("tokens: the %s store does not keep tokens", st.Dialect())
	}
	return fn(cmd.Context(), ts, store.Scope{OrgID: org, UserID: user})
}

func newTokensCreateCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "create",
		Short:   "Make a token and print its secret (once)",
		Example: "  openintern tokens create --org acme --user alice --role admin --name bootstrap",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fs := cmd.Flags()
			name, _ := fs.GetString("name")
			role, _ := fs.GetString("role")
			project, _ := fs.GetString("project")
			expiresIn, _ := fs.GetDuration("expires")
			asJSON, _ := fs.GetBool("json")
			return withTokenStore(cmd, lookupEnv, func(ctx context.Context, ts store.TokenStore, owner store.Scope) error {
				now := time.Now()
				var expires *time.Time
				if expiresIn != 0 {
					at := now.Add(expiresIn)
					expires = &at
				}
				owner.ProjectID = project
				tok, secret, err := auth.Issue(auth.TokenRequest{Scope: owner, Name: name, Role: role, ExpiresAt: expires, Now: now})
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("tokens create: %w", err)}
				}
				if err := ts.CreateToken(ctx, tok); err != nil {
					return fmt.Errorf("tokens create: %w", err)
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), map[string]any{"token": tok, "secret": secret})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n", secret)
				fmt.Fprintf(cmd.ErrOrStderr(), "created %s %q (%s of org %s, user %s%s%s); the secret above is shown only now:\n"+
					"  export OPENINTERN_TOKEN=%s\n", tok.ID, tok.Name, tok.Role, tok.OrgID, tok.UserID, projectNote(tok.ProjectID), expiryNote(tok.ExpiresAt), secret)
				return nil
			})
		},
	}
	fs := cmd.Flags()
	fs.String("name", "", "what the token is for (required)")
	fs.String("role", "member", "viewer, member or admin")
	fs.String("project", "", "bind the token to this project (default: any project the request names)")
	fs.Duration("expires", 0, "expire after this long, e.g. 720h (default: never)")
	return cmd
}

func projectNote(p string) string {
	if p == "" {
		return ", any project"
	}
	return ", project " + p
}

func expiryNote(at *time.Time) string {
	if at == nil {
		return ", no expiry"
	}
	return ", expires " + at.Local().Format(time.DateTime)
}

func newTokensListCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List an org's user's tokens (never their secrets)",
		Example: "  openintern tokens list --org acme --user alice",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, _ := cmd.Flags().GetBool("json")
			return withTokenStore(cmd, lookupEnv, func(ctx context.Context, ts store.TokenStore, owner store.Scope) error {
				list, err := ts.ListTokens(ctx, owner.OrgID, owner.UserID)
				if err != nil {
					return fmt.Errorf("tokens list: %w", err)
				}
				if asJSON {
					if list == nil {
						list = []store.APIToken{}
					}
					return writeJSON(cmd.OutOrStdout(), list)
				}
				if len(list) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "no tokens for org %s, user %s\n", owner.OrgID, owner.UserID)
					return nil
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tNAME\tROLE\tPROJECT\tCREATED\tSTATE")
				now := time.Now()
				for _, t := range list {
					state := "active"
					if err := t.Usable(now); err != nil {
						state = err.Error()
					} else if t.ExpiresAt != nil {
						state = "expires " + t.ExpiresAt.Local().Format(time.DateTime)
					}
					project := t.ProjectID
					if project == "" {
						project = "*"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, project, t.CreatedAt.Local().Format(time.DateTime), state)
				}
				return w.Flush()
			})
		},
	}
}

func newTokensRevokeCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return &cobra.Command{
		Use:     "revoke TOKEN_ID",
		Short:   "Revoke a token at once; its web sessions end",
		Example: "  openintern tokens revoke tok_… --org acme --user alice",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, _ := cmd.Flags().GetBool("json")
			return withTokenStore(cmd, lookupEnv, func(ctx context.Context, ts store.TokenStore, owner store.Scope) error {
				tok, err := ts.RevokeToken(ctx, owner.OrgID, owner.UserID, args[0], time.Now())
				if err != nil {
					return fmt.Errorf("tokens revoke %s (org %s, user %s): %w", args[0], owner.OrgID, owner.UserID, err)
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), tok)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "revoked %s %q at %s\n", tok.ID, tok.Name, tok.RevokedAt.Local().Format(time.DateTime))
				return nil
			})
		},
	}
}
