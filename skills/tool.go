package skills

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// ToolName is the tool that loads a granted skill.
const ToolName = "use_skill"

// MaxToolFileBytes bounds a file use_skill returns.
const MaxToolFileBytes = 256 << 10

// GrantStore is what use_skill reads to know the calling agent's skills: the
// agent's own, and in a group run its role's.
type GrantStore interface {
	GetAgent(ctx context.Context, scope store.Scope, agentID string) (store.Agent, error)
	GetRun(ctx context.Context, scope store.Scope, runID string) (store.Run, error)
	GetMember(ctx context.Context, scope store.Scope, groupID, memberID string) (store.GroupMember, error)
	GetRole(ctx context.Context, scope store.Scope, roleID string) (store.Role, error)
}

// Tool is use_skill: it returns a granted skill's SKILL.md body, or one of
// its text files, to the agent that calls it. It changes nothing.
type Tool struct {
	cat *Catalog
	st  GrantStore
}

var (
	_ tools.Tool     = (*Tool)(nil)
	_ tools.ReadOnly = (*Tool)(nil)
)

// NewTool returns use_skill over cat, reading grants from st.
func NewTool(cat *Catalog, st GrantStore) *Tool { return &Tool{cat: cat, st: st} }

// ReadOnly: use_skill only reads skills.
func (t *Tool) ReadOnly() bool { return true }

var toolParams = json.RawMessage(`{
  "type": "object",
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 64,
      "description": "The skill's name, as listed in your instructions."},
    "file": {"type": "string", "minLength": 1, "maxLength": 512,
      "description": "A file of the skill to read (a path from its file list), instead of its instructions."}
  },
  "required": ["name"],
  "additionalProperties": false
}`)

// Spec describes use_skill.
func (t *Tool) Spec() llm.ToolSpec {
	return llm.ToolSpec{
		Name: ToolName,
		Description: "Load one of the skills you are granted (listed in your instructions): its full " +
			"instructions and the list of its files. Call it before doing a task a skill is for, then follow " +
			"what it says. With file, it returns that text file of the skill instead.",
		Parameters: toolParams,
	}
}

type toolArgs struct {
	Name string `json:"name"`
	File string `json:"file"`
}

// Run loads the skill if the calling agent is granted it.
func (t *Tool) Run(ctx context.Context, call tools.Call) (tools.Result, error) {
	var args toolArgs
	if err := json.Unmarshal(call.Args, &args); err != nil {
		return tools.Result{Content: "arguments: " + err.Error(), IsError: true}, nil
	}
	granted, err := t.granted(ctx, call)
	if err != nil {
		return tools.Result{}, err
	}
	if !slices.Contains(granted, args.Name) {
		msg := fmt.Sprintf("you are not granted a skill named %q", args.Name)
		if len(granted) > 0 {
			msg += "; your skills: " + strings.Join(granted, ", ")
		} else {
			msg += "; you have no skills"
		}
		return tools.Result{Content: msg, IsError: true}, nil
	}
	if args.File != "" {
		return t.file(ctx, call.Scope, args.Name, args.File)
	}
	sk, err := t.cat.Get(ctx, call.Scope, args.Name)
	if errors.Is(err, store.ErrNotFound) {
		return tools.Result{Content: fmt.Sprintf("the skill %q no longer exists", args.Name), IsError: true}, nil
	}
	if err != nil {
		return tools.Result{}, err
	}
	return tools.Result{Content: Render(sk)}, nil
}

// Render is what use_skill answers for a skill: its instructions, then its
// files and the tools it names.
func Render(sk store.Skill) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Skill: %s\n\n%s", sk.Name, sk.Body)
	if !strings.HasSuffix(sk.Body, "\n") {
		b.WriteString("\n")
	}
	if len(sk.Files) > 0 {
		fmt.Fprintf(&b, "\nFiles of this skill (read one with %s and file):\n", ToolName)
		for _, f := range sk.Files {
			fmt.Fprintf(&b, "- %s (%d bytes)\n", f.Path, f.Size)
		}
	}
	if len(sk.AllowedTools) > 0 {
		fmt.Fprintf(&b, "\nTools this skill uses: %s (you can call those you are granted).\n", strings.Join(sk.AllowedTools, ", "))
	}
	return b.String()
}

func (t *Tool) file(ctx context.Context, scope store.Scope, name, path string) (tools.Result, error) {
	f, err := t.cat.File(ctx, scope, name, path)
	if errors.Is(err, store.ErrNotFound) {
		return tools.Result{Content: fmt.Sprintf("the skill %q has no file %q; call %s with only the name to list its files", name, path, ToolName), IsError: true}, nil
	}
	if err != nil {
		return tools.Result{}, err
	}
	if !utf8.Valid(f.Content) || bytes.IndexByte(f.Content, 0) >= 0 {
		return tools.Result{Content: fmt.Sprintf("%s is a binary file (%d bytes); only text files can be read", path, f.Size), IsError: true}, nil
	}
	if len(f.Content) > MaxToolFileBytes {
		return tools.Result{Content: fmt.Sprintf("%s is %d bytes, more than the %d this tool returns", path, f.Size, MaxToolFileBytes), IsError: true}, nil
	}
	return tools.Result{Content: string(f.Content)}, nil
}

// granted is the calling agent's skills: its own, and in a group run its
// role's too (see MergeGrants), as the run's prompt listed them.
func (t *Tool) granted(ctx context.Context, call tools.Call) ([]string, error) {
	a, err := t.st.GetAgent(ctx, call.Scope, call.AgentID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("use_skill: agent: %w", err)
	}
	if call.GroupID == "" {
		return a.Skills, nil
	}
	role, err := t.role(ctx, call)
	if err != nil || role == nil {
		return a.Skills, err
	}
	return MergeGrants(a.Skills, role.Skills), nil
}

// role finds the role the call's run works in, as the run does: the run's
// own role, else the agent's membership's; nil when it has none.
func (t *Tool) role(ctx context.Context, call tools.Call) (*store.Role, error) {
	roleID := ""
	if call.RunID != "" {
		run, err := t.st.GetRun(ctx, call.Scope, call.RunID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("use_skill: run: %w", err)
		}
		roleID = run.RoleID
	}
	if roleID == "" {
		m, err := t.st.GetMember(ctx, call.Scope, call.GroupID, call.AgentID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("use_skill: membership: %w", err)
		}
		roleID = m.RoleID
	}
	r, err := t.st.GetRole(ctx, call.Scope, roleID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("use_skill: role: %w", err)
	}
	return &r, nil
}

// PromptSection is the part of an agent's system prompt that lists its
// skills: one line each, name and description, so ten skills cost ten
// lines; the model loads a skill's body with use_skill when it needs it.
func PromptSection(granted []store.Skill) string {
	if len(granted) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Skills you can use. Before a task one of them is for, call %s with its name to load its instructions, then follow them:\n", ToolName)
	for _, sk := range granted {
		fmt.Fprintf(&b, "- %s: %s\n", sk.Name, strings.Join(strings.Fields(sk.Description), " "))
	}
	return strings.TrimSuffix(b.String(), "\n")
}
