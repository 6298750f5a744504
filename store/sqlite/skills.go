package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/openintern/openintern/store"
)

var _ store.SkillStore = (*Store)(nil)

const skillCols = `org_id, user_id, project_id, name, description, body, allowed_tools, size_bytes, files_count, created_at, updated_at`

func scanSkill(row scanner) (store.Skill, error) {
	var (
		sk               store.Skill
		tools            string
		created, updated int64
	)
	if err := row.Scan(&sk.Scope.OrgID, &sk.Scope.UserID, &sk.Scope.ProjectID, &sk.Name, &sk.Description, &sk.Body,
		&tools, &sk.Size, &sk.FileCount, &created, &updated); err != nil {
		return store.Skill{}, err
	}
	sk.Source = store.SkillUploaded
	sk.CreatedAt, sk.UpdatedAt = fromMicros(created), fromMicros(updated)
	sk.AllowedTools = []string{}
	if err := json.Unmarshal([]byte(tools), &sk.AllowedTools); err != nil {
		return store.Skill{}, fmt.Errorf("decode allowed tools: %w", err)
	}
	return sk, nil
}

// PutSkill stores a skill and its files in one transaction (see store.SkillStore).
func (s *Store) PutSkill(ctx context.Context, sk store.Skill, replace bool) (store.Skill, error) {
	if err := store.CheckSkill(sk); err != nil {
		return store.Skill{}, fmt.Errorf("sqlite: put skill: %w", err)
	}
	tools, err := store.ToolsJSON(sk.AllowedTools)
	if err != nil {
		return store.Skill{}, fmt.Errorf("sqlite: put skill: %w", err)
	}
	if sk.Size == 0 {
		sk.Size = store.SkillSize(sk)
	}
	var out store.Skill
	err = s.writeTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		created := now
		prev, err := scanSkill(tx.QueryRowContext(ctx, `SELECT `+skillCols+` FROM skills WHERE `+scopeCond+` AND name = ?`,
			scopeArgs(sk.Scope, sk.Name)...))
		switch {
		case err == nil && !replace:
			return fmt.Errorf("skill %q exists: %w", sk.Name, store.ErrConflict)
		case err == nil:
			created = prev.CreatedAt
			if err := deleteSkill(ctx, tx, sk.Scope, sk.Name); err != nil {
				return err
			}
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		out, err = scanSkill(tx.QueryRowContext(ctx, `INSERT INTO skills (`+skillCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING `+skillCols,
			scopeArgs(sk.Scope, sk.Name, sk.Description, sk.Body, tools, sk.Size, len(sk.Files), micros(created), micros(now))...))
		if err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO skill_files (org_id, user_id, project_id, name, path, content) VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer func() { _ = stmt.Close() }()
		for _, f := range sk.Files {
			content := f.Content
			if content == nil {
				content = []byte{}
			}
			if _, err := stmt.ExecContext(ctx, scopeArgs(sk.Scope, sk.Name, f.Path, content)...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return store.Skill{}, fail("put skill", err)
	}
	out.Files = make([]store.SkillFile, len(sk.Files))
	for i, f := range sk.Files {
		out.Files[i] = store.SkillFile{Path: f.Path, Size: int64(len(f.Content))}
	}
	return out, nil
}

// deleteSkill deletes a skill's row and files; it reports whether there was one.
func deleteSkill(ctx context.Context, tx *sql.Tx, scope store.Scope, name string) error {
	res, err := tx.ExecContext(ctx, `DELETE FROM skills WHERE `+scopeCond+` AND name = ?`, scopeArgs(scope, name)...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err == nil {
			err = store.ErrNotFound
		}
		return err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM skill_files WHERE `+scopeCond+` AND name = ?`, scopeArgs(scope, name)...)
	return err
}

// GetSkill returns a skill with its body and file list.
func (s *Store) GetSkill(ctx context.Context, scope store.Scope, name string) (store.Skill, error) {
	var sk store.Skill
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		sk, err = scanSkill(tx.QueryRowContext(ctx, `SELECT `+skillCols+` FROM skills WHERE `+scopeCond+` AND name = ?`, scopeArgs(scope, name)...))
		if err != nil {
			return err
		}
		sk.Files = []store.SkillFile{}
		return queryRows(ctx, tx, `SELECT path, length(content) FROM skill_files WHERE `+scopeCond+` AND name = ? ORDER BY path`,
			scopeArgs(scope, name), func(rows *sql.Rows) error {
				var f store.SkillFile
				if err := rows.Scan(&f.Path, &f.Size); err != nil {
					return err
				}
				sk.Files = append(sk.Files, f)
				return nil
			})
	})
	if err != nil {
		return store.Skill{}, fail("get skill", err)
	}
	return sk, nil
}

// ListSkills returns the scope's skills by name, without bodies.
func (s *Store) ListSkills(ctx context.Context, scope store.Scope) ([]store.Skill, error) {
	out := []store.Skill{}
	err := queryRows(ctx, s.r, `SELECT `+skillCols+` FROM skills WHERE `+scopeCond+` ORDER BY name`, scopeArgs(scope),
		func(rows *sql.Rows) error {
			sk, err := scanSkill(rows)
			if err != nil {
				return err
			}
			sk.Body = ""
			out = append(out, sk)
			return nil
		})
	if err != nil {
		return nil, fail("list skills", err)
	}
	return out, nil
}

// GetSkillFile returns one file of a skill with its content.
func (s *Store) GetSkillFile(ctx context.Context, scope store.Scope, name, path string) (store.SkillFile, error) {
	f := store.SkillFile{Path: path}
	err := s.r.QueryRowContext(ctx, `SELECT content FROM skill_files WHERE `+scopeCond+` AND name = ? AND path = ?`,
		scopeArgs(scope, name, path)...).Scan(&f.Content)
	if err != nil {
		return store.SkillFile{}, fail("get skill file", err)
	}
	if f.Content == nil {
		f.Content = []byte{}
	}
	f.Size = int64(len(f.Content))
	return f, nil
}

// DeleteSkill deletes a skill and its files.
func (s *Store) DeleteSkill(ctx context.Context, scope store.Scope, name string) error {
	return fail("delete skill", s.writeTx(ctx, func(tx *sql.Tx) error { return deleteSkill(ctx, tx, scope, name) }))
}
