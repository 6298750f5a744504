package main

import (
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/llm"
)

// failOnPostgres makes the daemon's own PostgreSQL schema refuse a statement,
// a real database failure in the middle of a multi-step operation: a trigger
// raises for the rows cond selects.
func failOnPostgres(t *testing.T, url, table, when, cond string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	row := "NEW"
	if when == "DELETE" {
		row = "OLD"
	}
	sql := `CREATE FUNCTION fail_` + table + `() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF ` + cond + ` THEN RAISE EXCEPTION 'injected failure'; END IF;
			RETURN ` + row + `;
		END $$;
		CREATE TRIGGER fail_` + table + ` BEFORE ` + when + ` ON ` + table + `
			FOR EACH ROW EXECUTE FUNCTION fail_` + table + `()`
	if _, err := conn.Exec(t.Context(), sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("install trigger: %v", err)
	}
}

// TestTeamOperationsAreAtomic: creating a group with members, and deleting
// a member agent with cascade, each change everything or nothing when the
// database fails part-way (before, a failed member left a half-made group,
// and a failed agent delete left the agent without its memberships).
func TestTeamOperationsAreAtomic(t *testing.T) {
	cfg := newConfig(t, "postgres")
	d := startDaemon(t, cfg, llm.NewOffline())
	c := d.client("org-atomic", "u1")
	c.must(http.StatusCreated, "POST", "/api/roles", map[string]any{"role_id": "lead", "name": "Lead", "is_lead": true}, nil)
	c.must(http.StatusCreated, "POST", "/api/roles", map[string]any{"role_id": "dev", "name": "Dev"}, nil)
	for _, id := range []string{"alice", "bob", "carol"} {
		c.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": id, "name": id}, nil)
	}
	failOnPostgres(t, cfg.DatabaseURL, "group_members", "INSERT", "NEW.agent_id = 'bob'")
	failOnPostgres(t, cfg.DatabaseURL, "agents", "DELETE", "OLD.agent_id = 'carol'")

	status, body := c.req("POST", "/api/groups", map[string]any{"group_id": "g", "name": "G", "members": []map[string]string{
		{"agent_id": "alice", "role_id": "lead"}, {"agent_id": "bob", "role_id": "dev"},
	}})
	if status < 500 {
		t.Fatalf("create group with a failing member: %d %s, want the failure", status, body)
	}
	if status, body := c.req("GET", "/api/groups/g", nil); status != http.StatusNotFound {
		t.Fatalf("after a failed create the group exists: %d %s", status, body)
	}

	c.must(http.StatusCreated, "POST", "/api/groups", map[string]any{"group_id": "h", "name": "H", "members": []map[string]string{
		{"agent_id": "alice", "role_id": "lead"}, {"agent_id": "carol", "role_id": "dev"},
	}}, nil)
	status, body = c.req("DELETE", "/api/agents/carol?cascade=true", nil)
	if status < 500 {
		t.Fatalf("cascading delete of an agent whose delete fails: %d %s, want the failure", status, body)
	}
	var members struct {
		Members []struct {
			AgentID string `json:"agent_id"`
		} `json:"members"`
	}
	c.must(http.StatusOK, "GET", "/api/groups/h/members", nil, &members)
	if len(members.Members) != 2 {
		t.Fatalf("after a failed cascading delete the group has %d members, want 2: %+v", len(members.Members), members)
	}
	c.must(http.StatusOK, "GET", "/api/agents/carol", nil, nil)
	// Without cascade: 409, nothing changed.
	status, body = c.req("DELETE", "/api/agents/alice", nil)
	if status != http.StatusConflict {
		t.Fatalf("delete a member agent without cascade: %d %s, want 409", status, body)
	}
	c.must(http.StatusNoContent, "DELETE", "/api/agents/alice?cascade=true", nil, nil)
	c.must(http.StatusOK, "GET", "/api/groups/h/members", nil, &members)
	if len(members.Members) != 1 || members.Members[0].AgentID != "carol" {
		t.Fatalf("members after deleting alice with cascade: %+v", members)
	}
}
