package skills

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/openintern/openintern/store"
)

// ErrReadOnly: the skill comes from the daemon's skills folder, which the
// API cannot change (edit the folder and restart instead).
var ErrReadOnly = errors.New("the skill comes from the daemon's skills folder and cannot be changed over the API")

// LoadDir reads the skills folder: each subfolder holding a SKILL.md is a
// skill (others are ignored). A malformed skill or two of one name stop
// start-up, naming the folder, so a typo is not silently a missing skill.
// "" is no folder.
func LoadDir(dir string, lim Limits) ([]store.Skill, error) {
	if dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("skills folder: %w", err)
	}
	var out []store.Skill
	seen := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sub := filepath.Join(dir, e.Name())
		if _, err := os.Lstat(filepath.Join(sub, SkillFileName)); err != nil {
			continue
		}
		root, err := os.OpenRoot(sub)
		if err != nil {
			return nil, fmt.Errorf("skills folder: %w", err)
		}
		sk, err := ReadFS(root.FS(), lim)
		_ = root.Close()
		if err != nil {
			return nil, fmt.Errorf("skills folder: %s: %w", sub, err)
		}
		if prev, dup := seen[sk.Name]; dup {
			return nil, fmt.Errorf("skills folder: %s and %s both name the skill %q", prev, sub, sk.Name)
		}
		seen[sk.Name] = sub
		out = append(out, sk)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Catalog is the skills a scope can see: the daemon's folder's (read-only,
// every scope) and the scope's uploaded ones. A name is one skill: an upload
// may not take the name of a folder skill.
type Catalog struct {
	store  store.SkillStore
	config map[string]store.Skill
	lim    Limits
	// known reports whether a tool name (or "<server>__*") is one the
	// daemon has; nil knows none.
	known func(name string) bool
}

// NewCatalog makes the catalog of st's skills and the folder's skills
// (LoadDir's). known tells the tools a skill names that the daemon has.
func NewCatalog(st store.SkillStore, folder []store.Skill, lim Limits, known func(string) bool) *Catalog {
	c := &Catalog{store: st, config: map[string]store.Skill{}, lim: lim.withDefaults(), known: known}
	for _, sk := range folder {
		c.config[sk.Name] = sk
	}
	return c
}

// Limits are the caps of an upload.
func (c *Catalog) Limits() Limits { return c.lim }

// summary is a skill without its body and files.
func summary(sk store.Skill) store.Skill {
	sk.Body, sk.Files = "", nil
	return sk
}

// List returns the skills the scope sees, by name, without bodies and files.
func (c *Catalog) List(ctx context.Context, scope store.Scope) ([]store.Skill, error) {
	up, err := c.store.ListSkills(ctx, scope)
	if err != nil {
		return nil, err
	}
	out := make([]store.Skill, 0, len(up)+len(c.config))
	for _, sk := range c.config {
		out = append(out, summary(sk))
	}
	for _, sk := range up {
		if _, shadowed := c.config[sk.Name]; !shadowed {
			out = append(out, sk)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Get returns a skill with its body and file list (no contents).
func (c *Catalog) Get(ctx context.Context, scope store.Scope, name string) (store.Skill, error) {
	if sk, ok := c.config[name]; ok {
		files := make([]store.SkillFile, len(sk.Files))
		for i, f := range sk.Files {
			files[i] = store.SkillFile{Path: f.Path, Size: f.Size}
		}
		sk.Files = files
		return sk, nil
	}
	if !ValidName(name) {
		return store.Skill{}, store.ErrNotFound
	}
	return c.store.GetSkill(ctx, scope, name)
}

// File returns one file of a skill with its content.
func (c *Catalog) File(ctx context.Context, scope store.Scope, name, path string) (store.SkillFile, error) {
	if sk, ok := c.config[name]; ok {
		for _, f := range sk.Files {
			if f.Path == path {
				return f, nil
			}
		}
		return store.SkillFile{}, store.ErrNotFound
	}
	if !ValidName(name) {
		return store.SkillFile{}, store.ErrNotFound
	}
	return c.store.GetSkillFile(ctx, scope, name, path)
}

// Upload reads an archive (see ReadArchive) and stores its skill in the
// scope; replace swaps a skill of that name, which is ErrConflict otherwise.
func (c *Catalog) Upload(ctx context.Context, scope store.Scope, archive []byte, replace bool) (store.Skill, error) {
	sk, err := ReadArchive(archive, c.lim)
	if err != nil {
		return store.Skill{}, err
	}
	if _, ok := c.config[sk.Name]; ok {
		return store.Skill{}, fmt.Errorf("%w: %q", ErrReadOnly, sk.Name)
	}
	sk.Scope = scope
	return c.store.PutSkill(ctx, sk, replace)
}

// Delete deletes an uploaded skill.
func (c *Catalog) Delete(ctx context.Context, scope store.Scope, name string) error {
	if _, ok := c.config[name]; ok {
		return fmt.Errorf("%w: %q", ErrReadOnly, name)
	}
	if !ValidName(name) {
		return store.ErrNotFound
	}
	return c.store.DeleteSkill(ctx, scope, name)
}

// Granted returns the named skills the scope has, in the order named,
// without bodies and files; names of skills that do not exist (deleted since
// they were granted) are left out.
func (c *Catalog) Granted(ctx context.Context, scope store.Scope, names []string) ([]store.Skill, error) {
	if len(names) == 0 {
		return nil, nil
	}
	all, err := c.List(ctx, scope)
	if err != nil {
		return nil, err
	}
	var out []store.Skill
	for _, n := range names {
		i := slices.IndexFunc(all, func(sk store.Skill) bool { return sk.Name == n })
		if i >= 0 {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// UnknownTools lists the tools sk names that the daemon does not have.
func (c *Catalog) UnknownTools(sk store.Skill) []string {
	out := []string{}
	for _, t := range sk.AllowedTools {
		if c.known == nil || !c.known(t) {
			out = append(out, t)
		}
	}
	return out
}

// MergeGrants is the skills of an agent acting in a role: the agent's, then
// the role's it does not have. Unlike a role's tools, which replace the
// agent's, a role's skills add to them: a skill is know-how, not a
// permission, so a role has no reason to take one away.
func MergeGrants(agent, role []string) []string {
	out := slices.Clone(agent)
	for _, n := range role {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// CheckNames validates a list of skill names granted to an agent or role.
func CheckNames(names []string) error {
	for _, n := range names {
		if !ValidName(n) {
			return fmt.Errorf("skill name %q must be lowercase letters, digits and hyphens, at most %d", clip(strings.TrimSpace(n)), MaxNameLen)
		}
	}
	return nil
}
