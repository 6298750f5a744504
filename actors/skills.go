package actors

import (
	"context"
	"slices"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/skills"
	"github.com/openintern/openintern/store"
)

// Skills are the skills agents are granted (skills.Catalog): the prompt
// lists the name and description of each; the use_skill tool loads the rest.
type Skills interface {
	// Granted returns the named skills that exist in the scope, in order.
	Granted(ctx context.Context, scope store.Scope, names []string) ([]store.Skill, error)
}

// skillsPrompt is the system prompt's list of the agent's skills, "" when it
// has none. Like memory, a failure to read them degrades the turn.
func (t *turn) skillsPrompt(ctx context.Context) string {
	if t.rt.cfg.Skills == nil || len(t.agent.Skills) == 0 {
		return ""
	}
	granted, err := t.rt.cfg.Skills.Granted(ctx, t.scope, t.agent.Skills)
	if err != nil {
		t.rt.logger.Warn("skills unavailable for the prompt", "agent_id", t.run.AgentID, "err", err)
		return ""
	}
	if section := skills.PromptSection(granted); section != "" {
		return "\n\n" + section
	}
	return ""
}

// mergeSkills: a role's skills add to the agent's (see skills.MergeGrants).
func mergeSkills(agent, role []string) []string { return skills.MergeGrants(agent, role) }

// withoutSkillToolUnlessGranted drops use_skill from the specs offered to an
// agent granted no skill (an empty tool list offers every tool): it could
// only answer "you have no skills", and costs prompt tokens every step.
func withoutSkillToolUnlessGranted(specs []llm.ToolSpec, a store.Agent) []llm.ToolSpec {
	if len(a.Skills) > 0 {
		return specs
	}
	return slices.DeleteFunc(specs, func(s llm.ToolSpec) bool { return s.Name == skills.ToolName })
}

// withSkillTool permits use_skill to an agent with skills whose tools are a
// list: granting a skill grants reading it (use_skill is read-only and
// answers only for the caller's own skills). An empty list permits every
// tool, use_skill included.
func withSkillTool(a store.Agent) store.Agent {
	if len(a.Skills) == 0 || len(a.Tools) == 0 || slices.Contains(a.Tools, skills.ToolName) {
		return a
	}
	a.Tools = append(slices.Clip(a.Tools), skills.ToolName)
	return a
}
