package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/skills"
	"github.com/openintern/openintern/store"
)

// SkillCatalog is the skills a scope sees (skills.Catalog): the daemon's
// skills folder's and the scope's uploaded ones.
type SkillCatalog interface {
	List(ctx context.Context, scope store.Scope) ([]store.Skill, error)
	Get(ctx context.Context, scope store.Scope, name string) (store.Skill, error)
	Upload(ctx context.Context, scope store.Scope, archive []byte, replace bool) (store.Skill, error)
	Delete(ctx context.Context, scope store.Scope, name string) error
	UnknownTools(sk store.Skill) []string
}

// skillAnswer is a skill with the tools it names that the daemon does not
// have: naming them grants nothing, and a name no registry knows is likely
// a skill written for another agent (Claude's Read, Bash).
type skillAnswer struct {
	// SkillID is the skill's name, what /api/skills/:skill_id takes.
	SkillID string `json:"skill_id"`
	store.Skill
	UnknownTools []string `json:"unknown_tools"`
}

// maxSkillsGranted bounds the skills of an agent or role: each is a line of
// every prompt.
const maxSkillsGranted = 64

// MountSkills adds the /api/skills routes. Members upload and delete a
// scope's skills (a skill is instructions, not a permission: the tools it
// names still have to be granted); skills of the skills folder are read-only.
func (s *Server) MountSkills(cat SkillCatalog) {
	s.skills = cat
	api := s.apiGroup()
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/skills", Role: auth.RoleMember,
		Summary: "Upload a skill: a zip, tar or tar.gz of a folder with a SKILL.md (multipart field \"file\", or the raw archive as application/zip, application/x-tar or application/gzip)",
		Body:    upload{}, Response: skillAnswer{}, Status: http.StatusCreated,
		Query:  []queryParam{{Name: "replace", Type: "boolean", Description: "replace a skill of the same name instead of answering 409"}},
		Errors: []int{http.StatusConflict}}, s.uploadSkill)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/skills", Role: auth.RoleViewer,
		Summary:  "List the skills the scope sees (uploaded and from the skills folder), without bodies",
		Response: listOf{"skills", store.Skill{}}}, s.listSkills)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/skills/:skill_id", Role: auth.RoleViewer,
		Summary:  "Get a skill: metadata, SKILL.md body, file list, and the tools it names that the daemon lacks",
		Response: skillAnswer{}}, s.getSkill)
	s.register(api, routeSpec{Method: http.MethodDelete, Path: "/skills/:skill_id", Role: auth.RoleMember,
		Summary: "Delete an uploaded skill (skills of the skills folder are read-only: 409)",
		Status:  http.StatusNoContent, Errors: []int{http.StatusConflict}}, s.deleteSkill)
}

// failSkill maps the catalog's refusals, then the rest like Server.fail.
func (s *Server) failSkill(c *gin.Context, err error, what string) {
	switch {
	case errors.Is(err, skills.ErrReadOnly):
		writeError(c, http.StatusConflict, "skill_read_only", err.Error())
	case errors.Is(err, skills.ErrTooLarge):
		writeError(c, http.StatusRequestEntityTooLarge, "skill_too_large", err.Error())
	case errors.Is(err, skills.ErrInvalid):
		writeError(c, http.StatusBadRequest, "invalid_skill", err.Error())
	case errors.Is(err, store.ErrConflict):
		writeError(c, http.StatusConflict, "skill_exists", what+" already exists; upload with ?replace=true to replace it")
	default:
		s.fail(c, err, what)
	}
}

// archiveMediaTypes are the raw bodies POST /api/skills takes besides a
// multipart form. None is one a browser may send cross-site without a CORS
// preflight (which this API never grants), so they need no CSRF defence of
// their own.
var archiveMediaTypes = map[string]bool{
	"application/zip": true, "application/x-zip-compressed": true, "application/x-tar": true,
	"application/gzip": true, "application/x-gzip": true, "application/octet-stream": true,
}

// archiveBody reports whether the route takes a raw archive body of type mt.
func archiveBody(path, mt string) bool { return path == "/api/skills" && archiveMediaTypes[mt] }

// skillArchive reads the uploaded archive: the multipart field "file", or
// the raw body. It writes the error answer and returns false on failure.
func (s *Server) skillArchive(c *gin.Context) ([]byte, bool) {
	mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if mt != "multipart/form-data" {
		archive, err := io.ReadAll(c.Request.Body)
		if err != nil {
			if !bodyReadError(c, err) {
				s.fail(c, err, "archive")
			}
			return nil, false
		}
		return archive, true
	}
	fh, err := c.FormFile("file")
	if err != nil {
		if !bodyReadError(c, err) {
			writeError(c, http.StatusBadRequest, "missing_file", "a multipart form field \"file\" is required")
		}
		return nil, false
	}
	f, err := fh.Open()
	if err != nil {
		s.fail(c, err, "file")
		return nil, false
	}
	defer func() { _ = f.Close() }()
	archive, err := io.ReadAll(io.LimitReader(f, MaxUploadBytes+1))
	if err != nil {
		s.fail(c, err, "file")
		return nil, false
	}
	if len(archive) > MaxUploadBytes {
		writeError(c, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the archive exceeds %d bytes", MaxUploadBytes))
		return nil, false
	}
	return archive, true
}

func (s *Server) uploadSkill(c *gin.Context) {
	replace := false
	if v := c.Query("replace"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(c, http.StatusBadRequest, "invalid_query", "replace must be true or false")
			return
		}
		replace = b
	}
	archive, ok := s.skillArchive(c)
	if !ok {
		return
	}
	sk, err := s.skills.Upload(c.Request.Context(), scopeOf(c), archive, replace)
	if err != nil {
		s.failSkill(c, err, "skill")
		return
	}
	c.JSON(http.StatusCreated, skillAnswer{SkillID: sk.Name, Skill: sk, UnknownTools: s.skills.UnknownTools(sk)})
}

func (s *Server) listSkills(c *gin.Context) {
	list, err := s.skills.List(c.Request.Context(), scopeOf(c))
	if err != nil {
		s.fail(c, err, "skills")
		return
	}
	c.JSON(http.StatusOK, gin.H{"skills": nonNil(list), "total": len(list)})
}

func (s *Server) getSkill(c *gin.Context) {
	name := c.Param("skill_id")
	sk, err := s.skills.Get(c.Request.Context(), scopeOf(c), name)
	if err != nil {
		s.failSkill(c, err, "skill "+strconv.Quote(name))
		return
	}
	if sk.Files == nil {
		sk.Files = []store.SkillFile{}
	}
	c.JSON(http.StatusOK, skillAnswer{SkillID: sk.Name, Skill: sk, UnknownTools: s.skills.UnknownTools(sk)})
}

func (s *Server) deleteSkill(c *gin.Context) {
	name := c.Param("skill_id")
	if err := s.skills.Delete(c.Request.Context(), scopeOf(c), name); err != nil {
		s.failSkill(c, err, "skill "+strconv.Quote(name))
		return
	}
	c.Status(http.StatusNoContent)
}

// checkSkillGrants writes a 400 and returns false when list is not a list
// of skill names, or names one the scope does not have (when skills are
// mounted): a grant of a missing skill would silently do nothing.
func (s *Server) checkSkillGrants(c *gin.Context, list *[]string, code string) bool {
	if list == nil {
		return true
	}
	if len(*list) > maxSkillsGranted {
		writeError(c, http.StatusBadRequest, code, fmt.Sprintf("at most %d skills", maxSkillsGranted))
		return false
	}
	if err := skills.CheckNames(*list); err != nil {
		writeError(c, http.StatusBadRequest, code, err.Error())
		return false
	}
	if s.skills == nil || len(*list) == 0 {
		return true
	}
	have, err := s.skills.List(c.Request.Context(), scopeOf(c))
	if err != nil {
		s.fail(c, err, "skills")
		return false
	}
	known := make(map[string]bool, len(have))
	for _, sk := range have {
		known[sk.Name] = true
	}
	for _, n := range *list {
		if !known[n] {
			writeError(c, http.StatusBadRequest, "unknown_skill", fmt.Sprintf("skill %q does not exist in this scope; upload it first (GET /api/skills lists them)", n))
			return false
		}
	}
	return true
}
