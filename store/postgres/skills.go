package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

var _ store.SkillStore = (*Store)(nil)

const skillCols = `org_id, user_id, project_id, name, description, body, allowed_tools, size_bytes, files_count, created_at, updated_at`

func scanSkill(row pgx.Row) (store.Skill, error) {
	var (
		sk    store.Skill
		tools []byte
	)
	if err := row.Scan(&sk.Scope.OrgID, &sk.Scope.UserID, &sk.Scope.ProjectID, &sk.Name, &sk.Description, &sk.Body,
		&tools, &sk.Size, &sk.FileCount, &sk.CreatedAt, &sk.UpdatedAt); err != nil {
		return store.Skill{}, err
	}
	sk.Source = store.SkillUploaded
	sk.CreatedAt, sk.UpdatedAt = utc(sk.CreatedAt), utc(sk.UpdatedAt)
	sk.AllowedTools = []string{}
	if err := json.Unmarshal(tools, &sk.AllowedTools); err != nil {
		return store.Skill{}, fmt.Errorf("decode allowed tools: %w", err)
	}
	return sk, nil
}

// PutSkill stores a skill and its files in one transaction (see store.SkillStore).
func (s *Store) PutSkill(ctx context.Context, sk store.Skill, replace bool) (store.Skill, error) {
	if err := store.CheckSkill(sk); err != nil {
		return store.Skill{}, fmt.Errorf("postgres: put skill: %w", err)
	}
	tools, err := store.ToolsJSON(sk.AllowedTools)
	if err != nil {
		return store.Skill{}, fmt.Errorf("postgres: put skill: %w", err)
	}
	if sk.Size == 0 {
		sk.Size = store.SkillSize(sk)
	}
	sc := sk.Scope
	var out store.Skill
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		now := s.now()
		created := now
		// Writers of one skill take turns, also before its row exists, so
		// concurrent replaces both succeed, one after the other.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('skills:' || $1 || '/' || $2 || '/' || $3 || '/' || $4, 0))`,
			sc.OrgID, sc.UserID, sc.ProjectID, sk.Name); err != nil {
			return err
		}
		prev, err := scanSkill(tx.QueryRow(ctx, `SELECT `+skillCols+` FROM skills
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND name = $4 FOR UPDATE`, sc.OrgID, sc.UserID, sc.ProjectID, sk.Name))
		switch {
		case err == nil && !replace:
			return fmt.Errorf("skill %q exists: %w", sk.Name, store.ErrConflict)
		case err == nil:
			created = prev.CreatedAt
			if _, err := tx.Exec(ctx, `DELETE FROM skills WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND name = $4`,
				sc.OrgID, sc.UserID, sc.ProjectID, sk.Name); err != nil {
				return err
			}
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		out, err = scanSkill(tx.QueryRow(ctx, `INSERT INTO skills (`+skillCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11) RETURNING `+skillCols,
			sc.OrgID, sc.UserID, sc.ProjectID, sk.Name, sk.Description, sk.Body, tools, sk.Size, len(sk.Files), created, now))
		if err != nil {
			return err
		}
		rows := make([][]any, len(sk.Files))
		for i, f := range sk.Files {
			content := f.Content
			if content == nil {
				content = []byte{}
			}
			rows[i] = []any{sc.OrgID, sc.UserID, sc.ProjectID, sk.Name, f.Path, content}
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"skill_files"}, []string{"org_id", "user_id", "project_id", "name", "path", "content"},
			pgx.CopyFromRows(rows))
		return err
	})
	if err != nil {
		return store.Skill{}, s.fail(ctx, "put skill", err)
	}
	out.Files = skillFileList(sk.Files)
	return out, nil
}

// skillFileList is files without their contents.
func skillFileList(files []store.SkillFile) []store.SkillFile {
	out := make([]store.SkillFile, len(files))
	for i, f := range files {
		out[i] = store.SkillFile{Path: f.Path, Size: int64(len(f.Content))}
		if f.Content == nil {
			out[i].Size = f.Size
		}
	}
	return out
}

// GetSkill returns a skill with its body and file list.
func (s *Store) GetSkill(ctx context.Context, scope store.Scope, name string) (store.Skill, error) {
	sk, err := scanSkill(s.pool.QueryRow(ctx, `SELECT `+skillCols+` FROM skills
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND name = $4`, scope.OrgID, scope.UserID, scope.ProjectID, name))
	if err != nil {
		return store.Skill{}, s.fail(ctx, "get skill", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT path, octet_length(content) FROM skill_files
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND name = $4 ORDER BY path COLLATE "C"`,
		scope.OrgID, scope.UserID, scope.ProjectID, name)
	if err != nil {
		return store.Skill{}, s.fail(ctx, "get skill", err)
	}
	sk.Files, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.SkillFile, error) {
		var f store.SkillFile
		err := row.Scan(&f.Path, &f.Size)
		return f, err
	})
	if err != nil {
		return store.Skill{}, s.fail(ctx, "get skill", err)
	}
	if sk.Files == nil {
		sk.Files = []store.SkillFile{}
	}
	return sk, nil
}

// ListSkills returns the scope's skills by name, without bodies.
func (s *Store) ListSkills(ctx context.Context, scope store.Scope) ([]store.Skill, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+skillCols+` FROM skills
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 ORDER BY name COLLATE "C"`, scope.OrgID, scope.UserID, scope.ProjectID)
	if err != nil {
		return nil, s.fail(ctx, "list skills", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Skill, error) {
		sk, err := scanSkill(row)
		sk.Body = ""
		return sk, err
	})
	if err != nil {
		return nil, s.fail(ctx, "list skills", err)
	}
	if out == nil {
		out = []store.Skill{}
	}
	return out, nil
}

// GetSkillFile returns one file of a skill with its content.
func (s *Store) GetSkillFile(ctx context.Context, scope store.Scope, name, path string) (store.SkillFile, error) {
	f := store.SkillFile{Path: path}
	err := s.pool.QueryRow(ctx, `SELECT content FROM skill_files
		WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND name = $4 AND path = $5`,
		scope.OrgID, scope.UserID, scope.ProjectID, name, path).Scan(&f.Content)
	if err != nil {
		return store.SkillFile{}, s.fail(ctx, "get skill file", err)
	}
	f.Size = int64(len(f.Content))
	return f, nil
}

// DeleteSkill deletes a skill; its files go with it (ON DELETE CASCADE).
func (s *Store) DeleteSkill(ctx context.Context, scope store.Scope, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM skills WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND name = $4`,
		scope.OrgID, scope.UserID, scope.ProjectID, name)
	if err != nil {
		return s.fail(ctx, "delete skill", err)
	}
	if tag.RowsAffected() == 0 {
		return s.fail(ctx, "delete skill", store.ErrNotFound)
	}
	return nil
}
