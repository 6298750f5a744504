package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/store"
)

// skillView is a skill as the API shows it, with the tools it names that
// the daemon lacks.
type skillView struct {
	store.Skill
	UnknownTools []string `json:"unknown_tools"`
}

func newSkillsCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "skills",
		Aliases: []string{"skill"},
		Short:   "List, show, add and remove skills: instructions agents load when they need them",
		Long: "A skill is a folder with a SKILL.md (YAML front matter with name and description, then\n" +
			"instructions) and any files it needs, as in Anthropic's Agent Skills. Grant skills to agents\n" +
			"(agents create --skill) or roles (roles create --skill): their prompt lists each granted\n" +
			"skill's name and description, and the use_skill tool loads the rest when the model needs it.",
		Example: "  openintern skills add ./pdf-forms\n" +
			"  openintern skills add pdf-forms.zip --replace\n" +
			"  openintern skills list\n  openintern skills show pdf-forms\n  openintern skills remove pdf-forms",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(cmd.PersistentFlags())
	cmd.AddCommand(newSkillsListCmd(lookupEnv), newSkillsShowCmd(lookupEnv), newSkillsAddCmd(lookupEnv), newSkillsRemoveCmd(lookupEnv))
	return cmd
}

func newSkillsListCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return newListCmd(lookupEnv, listCommand[store.Skill]{
		field: "skills", path: "/api/skills",
		short:   "List the skills the scope sees (uploaded and from the daemon's skills folder)",
		example: "  openintern skills list\n  openintern skills list --json | jq -r '.skills[].name'",
		empty:   "no skills yet; add one with: openintern skills add FOLDER",
		header:  "SKILL\tSOURCE\tFILES\tSIZE\tDESCRIPTION",
		row: func(s store.Skill) string {
			return fmt.Sprintf("%s\t%s\t%d\t%d\t%s", s.Name, s.Source, s.FileCount, s.Size, truncate(s.Description, 60))
		},
	})
}

func skillPath(name string) string { return "/api/skills/" + url.PathEscape(name) }

func (c *apiClient) skillNotFound(name string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("no skill %s in %s; see openintern skills list", name, c.opts.scopeHint())
	}
	return err
}

func newSkillsShowCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return newShowCmd(lookupEnv, showCommand[skillView]{
		use: "show NAME", short: "Show a skill: its description, files and instructions", noun: "skill",
		example:  "  openintern skills show pdf-forms\n  openintern skills show pdf-forms --json",
		path:     skillPath,
		notFound: (*apiClient).skillNotFound,
		print: func(cmd *cobra.Command, st style, s skillView) {
			w := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			tools := orDefault(strings.Join(s.AllowedTools, ", "), "(none)")
			if len(s.UnknownTools) > 0 {
				tools += " (unknown here: " + strings.Join(s.UnknownTools, ", ") + ")"
			}
			for _, kv := range [][2]string{
				{"skill", s.Name}, {"description", s.Description}, {"source", s.Source},
				{"size", fmt.Sprintf("%d bytes", s.Size)}, {"tools", tools},
			} {
				fmt.Fprintf(tw, "%s\t%s\n", st.dim(kv[0]), kv[1])
			}
			_ = tw.Flush()
			if len(s.Files) > 0 {
				fmt.Fprintln(w, st.dim("files"))
				for _, f := range s.Files {
					fmt.Fprintf(w, "  %s (%d bytes)\n", f.Path, f.Size)
				}
			}
			fmt.Fprintf(w, "%s\n%s\n", st.dim("instructions"), strings.TrimRight(s.Body, "\n"))
		},
	})
}

// maxSkillArchive bounds what add reads or zips: the daemon takes no more
// in one upload.
const maxSkillArchive = 32 << 20

func newSkillsAddCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "add PATH",
		Short: "Upload a skill: a folder (zipped on the way), or a .zip, .tar or .tar.gz of one",
		Long: "Upload a skill into the scope. PATH is a folder holding SKILL.md, or an archive with SKILL.md\n" +
			"at its root or in its one top folder. A skill of the same name is refused unless --replace.",
		Example: "  openintern skills add ./pdf-forms\n  openintern skills add pdf-forms.tar.gz --replace",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			archive, name, err := skillArchive(args[0])
			if err != nil {
				return err
			}
			replace, _ := cmd.Flags().GetBool("replace")
			raw, err := c.uploadSkill(cmd.Context(), name, archive, replace)
			if err != nil {
				var ae *apiError
				if errors.As(err, &ae) && ae.Code == "skill_exists" {
					return fmt.Errorf("a skill of that name exists (in %s); add --replace to replace it", opts.scopeHint())
				}
				return fmt.Errorf("add skill: %w", err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				return writeLine(out, raw)
			}
			var s skillView
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("decode skill: %w", err)
			}
			fmt.Fprintf(out, "added skill %s (%d files, %d bytes)\n", s.Name, s.FileCount, s.Size)
			if len(s.UnknownTools) > 0 {
				fmt.Fprintf(out, "note: it names tools this daemon does not have: %s\n", strings.Join(s.UnknownTools, ", "))
			}
			fmt.Fprintf(out, "grant it with: openintern agents create NAME --skill %s\n", s.Name)
			return nil
		},
	}
	cmd.Flags().Bool("replace", false, "replace a skill of the same name")
	return cmd
}

// skillArchive reads PATH: an archive file as it is, a folder zipped in
// memory (regular files only; links are left out, as the daemon would
// refuse them).
func skillArchive(path string) ([]byte, string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, "", err
	}
	if !info.IsDir() {
		f, err := os.Open(path)
		if err != nil {
			return nil, "", err
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, maxSkillArchive+1))
		if err != nil {
			return nil, "", err
		}
		if len(data) > maxSkillArchive {
			return nil, "", fmt.Errorf("%s is larger than %d bytes", path, maxSkillArchive)
		}
		return data, filepath.Base(path), nil
	}
	if _, err := os.Stat(filepath.Join(path, "SKILL.md")); err != nil {
		return nil, "", fmt.Errorf("%s has no SKILL.md", path)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, "", err
	}
	defer root.Close()
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := root.ReadFile(p)
		if err != nil {
			return err
		}
		w, err := zw.Create(p)
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		if buf.Len() > maxSkillArchive {
			return fmt.Errorf("%s is larger than %d bytes zipped", path, maxSkillArchive)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), filepath.Base(filepath.Clean(path)) + ".zip", nil
}

// uploadSkill posts the archive to /api/skills as a multipart file.
func (c *apiClient) uploadSkill(ctx context.Context, filename string, archive []byte, replace bool) (json.RawMessage, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", filename)
	if err != nil {
		return nil, err
	}
	if _, err := fw.Write(archive); err != nil {
		return nil, err
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodPost, "/api/skills", nil)
	if err != nil {
		return nil, err
	}
	if replace {
		req.URL.RawQuery = "replace=true"
	}
	req.Body, req.ContentLength = io.NopCloser(&body), int64(body.Len())
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("upload skill: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, decodeAPIError(resp.StatusCode, raw)
	}
	return raw, nil
}

func newSkillsRemoveCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm", "delete"},
		Short:   "Delete an uploaded skill (skills of the daemon's skills folder are read-only)",
		Example: "  openintern skills remove pdf-forms",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			if err := c.do(cmd.Context(), http.MethodDelete, skillPath(args[0]), nil, nil); err != nil {
				var ae *apiError
				if errors.As(err, &ae) && ae.Code == "skill_read_only" {
					return fmt.Errorf("skill %s comes from the daemon's skills folder; remove it there and restart the daemon", args[0])
				}
				return c.skillNotFound(args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed skill %s\n", args[0])
			return nil
		},
	}
}
