package daemon

import (
	"fmt"
	"slices"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/skills"
	"github.com/openintern/openintern/store"
)

// newSkillCatalog reads the skills folder (a malformed skill stops start-up,
// naming it) and makes the catalog of it and the store's uploaded skills.
// toolNames lists the tools the daemon has, to tell a skill's unknown ones;
// it is read at each request, once the registry is complete.
func newSkillCatalog(cfg config.Config, st store.Store, toolNames func() []string) (*skills.Catalog, error) {
	ss, ok := st.(store.SkillStore)
	if !ok {
		return nil, fmt.Errorf("store %T keeps no skills", st)
	}
	lim := skills.Limits{MaxBytes: int64(cfg.Skills.MaxBytes)}
	folder, err := skills.LoadDir(cfg.Skills.Dir, lim)
	if err != nil {
		return nil, &config.Error{Key: "OPENINTERN_SKILLS_DIR", Reason: err.Error()}
	}
	known := func(name string) bool { return slices.Contains(toolNames(), name) }
	return skills.NewCatalog(ss, folder, lim, known), nil
}
