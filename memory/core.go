package memory

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openintern/openintern/store"
)

// DefaultCoreLabels are the blocks every agent shows even when they are empty,
// so the model knows where to write.
var DefaultCoreLabels = []string{"persona", "human", "notes"}

var labelRE = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

// maxCoreBlocks bounds the number of blocks per agent, so the system prompt
// stays small.
const maxCoreBlocks = 16

// CoreBlocks returns the agent's blocks, sorted by label, with the default
// labels present (empty when never written).
func (s *Service) CoreBlocks(ctx context.Context, scope store.Scope, agentID string) ([]CoreBlock, error) {
	stored, err := s.st.CoreBlocks(ctx, scope, agentID)
	if err != nil {
		return nil, fmt.Errorf("memory: core blocks: %w", err)
	}
	return s.withDefaults(stored), nil
}

// withDefaults completes blocks as stored: each with its limit, the default
// labels present, sorted by label. It sorts and extends stored in place.
func (s *Service) withDefaults(stored []CoreBlock) []CoreBlock {
	have := map[string]bool{}
	for i := range stored {
		have[stored[i].Label] = true
		if stored[i].Limit <= 0 {
			stored[i].Limit = s.cfg.CoreBlockLimit
		}
	}
	for _, l := range DefaultCoreLabels {
		if !have[l] {
			stored = append(stored, CoreBlock{Label: l, Limit: s.cfg.CoreBlockLimit})
		}
	}
	sort.Slice(stored, func(i, j int) bool { return stored[i].Label < stored[j].Label })
	return stored
}

// SetCoreBlock writes a block's whole value.
func (s *Service) SetCoreBlock(ctx context.Context, scope store.Scope, agentID, label, value string) (CoreBlock, error) {
	return s.updateCore(ctx, scope, agentID, "", label, func(string) (string, error) { return value, nil })
}

// updateCore sets the block label to next of its current value ("" when
// never written), checking the label, the size limit and the number of
// blocks. With a key, the edit is applied once (see Store.UpdateCoreBlock);
// a key applied before answers the block as it is now.
func (s *Service) updateCore(ctx context.Context, scope store.Scope, agentID, key, label string, next func(cur string) (string, error)) (CoreBlock, error) {
	if !labelRE.MatchString(label) {
		return CoreBlock{}, fmt.Errorf("memory: core block label %q must be 1-32 of a-z 0-9 _: %w", label, ErrInvalid)
	}
	b, applied, err := s.st.UpdateCoreBlock(ctx, scope, agentID, key, func(blocks []CoreBlock) (CoreBlock, error) {
		cur, exists := "", false
		for _, b := range blocks {
			if b.Label == label {
				cur, exists = b.Value, true
			}
		}
		value, err := next(cur)
		if err != nil {
			return CoreBlock{}, err
		}
		if n := utf8.RuneCountInString(value); n > s.cfg.CoreBlockLimit {
			return CoreBlock{}, fmt.Errorf("memory: core block %q would hold %d characters, the limit is %d: %w", label, n, s.cfg.CoreBlockLimit, ErrInvalid)
		}
		if !exists && len(blocks) >= maxCoreBlocks {
			return CoreBlock{}, fmt.Errorf("memory: an agent has at most %d core blocks: %w", maxCoreBlocks, ErrInvalid)
		}
		return CoreBlock{Label: label, Value: value, Limit: s.cfg.CoreBlockLimit, UpdatedAt: time.Now().UTC().Truncate(time.Microsecond)}, nil
	})
	if errors.Is(err, ErrInvalid) {
		return CoreBlock{}, err
	}
	if err != nil {
		return CoreBlock{}, fmt.Errorf("memory: core block: %w", err)
	}
	if applied {
		return b, nil
	}
	blocks, err := s.CoreBlocks(ctx, scope, agentID)
	if err != nil {
		return CoreBlock{}, err
	}
	for _, b := range blocks {
		if b.Label == label {
			return b, nil
		}
	}
	// Deleted since the key was applied.
	return CoreBlock{Label: label, Limit: s.cfg.CoreBlockLimit}, nil
}

// AppendCore adds text on a new line of a block. A non-empty key (the tool
// call's) appends once however often the call runs.
func (s *Service) AppendCore(ctx context.Context, scope store.Scope, agentID, key, label, text string) (CoreBlock, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return CoreBlock{}, fmt.Errorf("memory: core append: empty text: %w", ErrInvalid)
	}
	return s.updateCore(ctx, scope, agentID, key, label, func(cur string) (string, error) {
		if cur != "" {
			cur += "\n"
		}
		return cur + text, nil
	})
}

// ErrNoMatch: ReplaceCore's old text is not in the block.
var ErrNoMatch = errors.New("text not found in the block")

// ReplaceCore replaces the first occurrence of old with new in a block (new
// may be empty, which deletes old). A non-empty key (the tool call's)
// replaces once however often the call runs; a call run again after its
// replace succeeds again instead of finding old gone.
func (s *Service) ReplaceCore(ctx context.Context, scope store.Scope, agentID, key, label, old, new string) (CoreBlock, error) {
	if old == "" {
		return CoreBlock{}, fmt.Errorf("memory: core replace: empty old text: %w", ErrInvalid)
	}
	return s.updateCore(ctx, scope, agentID, key, label, func(cur string) (string, error) {
		if !strings.Contains(cur, old) {
			return "", fmt.Errorf("memory: core replace in %q: %w: %w", label, ErrNoMatch, ErrInvalid)
		}
		return strings.Replace(cur, old, new, 1), nil
	})
}

// RenderCore formats blocks for the system prompt.
func RenderCore(blocks []CoreBlock) string {
	var b strings.Builder
	b.WriteString("## Core memory (yours to edit with core_memory_append and core_memory_replace)\n")
	for _, bl := range blocks {
		fmt.Fprintf(&b, "<%s chars=%d/%d>\n%s\n</%s>\n", bl.Label, utf8.RuneCountInString(bl.Value), bl.Limit, bl.Value, bl.Label)
	}
	return b.String()
}
