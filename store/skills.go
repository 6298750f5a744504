package store

import (
	"context"
	"errors"
	"time"
)

// Skill sources.
const (
	SkillUploaded = "uploaded" // uploaded over the API into a scope, kept in the store
	SkillConfig   = "config"   // read from the daemon's skills folder, visible to every scope
)

// Skill is a folder of instructions an agent can load when it needs them
// (Anthropic's Agent Skills format): SKILL.md's front matter gives Name and
// Description, its text after that is Body, and Files are the rest of the
// folder. Only Name and Description go into an agent's prompt; the body and
// files are read through the use_skill tool.
type Skill struct {
	Scope       Scope  `json:"-"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Body        string `json:"body,omitempty"`
	// AllowedTools are the tools (or "<server>__*") the skill says it needs.
	// They are listed to the model but grant nothing: a tool is callable only
	// if the agent (or its role) is granted it too.
	AllowedTools []string `json:"allowed_tools"`
	Source       string   `json:"source"`
	// Size is the bytes of SKILL.md and every file; FileCount counts Files.
	Size      int64       `json:"size"`
	FileCount int         `json:"files_count"`
	Files     []SkillFile `json:"files,omitempty"`
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// SkillFile is one file of a skill besides SKILL.md, by its slash-separated
// path inside the skill's folder. Content is set only when a file is read.
type SkillFile struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	Content []byte `json:"-"`
}

// SkillStore keeps the skills uploaded into each scope.
type SkillStore interface {
	// PutSkill stores a skill with its files (each with Content) in one
	// transaction. A skill of that name in the scope is ErrConflict, unless
	// replace, which swaps it whole (keeping its CreatedAt).
	PutSkill(ctx context.Context, sk Skill, replace bool) (Skill, error)
	// GetSkill returns the skill with its body and file list (no contents).
	GetSkill(ctx context.Context, scope Scope, name string) (Skill, error)
	// ListSkills returns the scope's skills by name, without body and files.
	ListSkills(ctx context.Context, scope Scope) ([]Skill, error)
	// GetSkillFile returns one file of a skill with its content.
	GetSkillFile(ctx context.Context, scope Scope, name, path string) (SkillFile, error)
	// DeleteSkill deletes the skill and its files; ErrNotFound when absent.
	DeleteSkill(ctx context.Context, scope Scope, name string) error
}

// CheckSkill refuses a skill a store must not keep: no scope or name, or a
// file without a path. What a valid skill is (names, sizes) is package
// skills' to decide; this only guards the store's keys.
func CheckSkill(sk Skill) error {
	if err := CheckScope(sk.Scope); err != nil {
		return err
	}
	if sk.Name == "" {
		return errors.New("skill name is empty")
	}
	for _, f := range sk.Files {
		if f.Path == "" {
			return errors.New("skill file path is empty")
		}
	}
	return nil
}

// SkillSize is the bytes a skill holds: its SKILL.md (front matter and body
// as uploaded, approximated by name, description and body) and its files.
func SkillSize(sk Skill) int64 {
	n := int64(len(sk.Name) + len(sk.Description) + len(sk.Body))
	for _, f := range sk.Files {
		n += int64(len(f.Content))
	}
	return n
}
