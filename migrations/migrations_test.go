package migrations

import (
	"strings"
	"testing"
)

func TestList(t *testing.T) {
	for _, dialect := range Dialects {
		list, err := List(dialect)
		if err != nil {
			t.Fatalf("List(%q): %v", dialect, err)
		}
		if len(list) == 0 {
			t.Fatalf("List(%q) is empty", dialect)
		}
		for i, m := range list {
			if m.Version != i+1 {
				t.Fatalf("%s: migration %d has version %d; versions must be 1, 2, 3...", dialect, i, m.Version)
			}
			if m.Name == "" || strings.TrimSpace(m.SQL) == "" {
				t.Fatalf("%s: migration %d = %+v", dialect, i, m)
			}
		}
		if list[0].Name != "init" || !strings.Contains(list[0].SQL, "CREATE TABLE agents") {
			t.Fatalf("%s: first migration is %q", dialect, list[0].Name)
		}
	}
}

// TestDialectsMatch keeps the two dialects' migrations in step: the same
// versions and names, and the same tables and indexes.
func TestDialectsMatch(t *testing.T) {
	pg, err := List("postgres")
	if err != nil {
		t.Fatal(err)
	}
	lite, err := List("sqlite")
	if err != nil {
		t.Fatal(err)
	}
	if len(pg) != len(lite) {
		t.Fatalf("postgres has %d migrations, sqlite %d", len(pg), len(lite))
	}
	for i := range pg {
		if pg[i].Version != lite[i].Version || pg[i].Name != lite[i].Name {
			t.Fatalf("migration %d: postgres %04d_%s, sqlite %04d_%s", i, pg[i].Version, pg[i].Name, lite[i].Version, lite[i].Name)
		}
		if a, b := objects(pg[i].SQL), objects(lite[i].SQL); strings.Join(a, ",") != strings.Join(b, ",") {
			t.Fatalf("%04d_%s creates different objects:\n postgres %v\n sqlite   %v", pg[i].Version, pg[i].Name, a, b)
		}
	}
}

// dialectOnly are objects that one dialect created in another version than
// the other, or only one has: the term statistics and impact-ordered postings
// came to PostgreSQL in 0008 (replacing a tsvector GIN index) and to SQLite
// in 0008 and 0009 (replacing FTS5, a virtual table objects does not list).
var dialectOnly = map[string]bool{
	"index memory_chunks_tsv_idx": true, "table memory_terms": true,
	"table memory_postings": true, "index memory_postings_rank_idx": true, "index memory_chunks_scope_id_idx": true,
	// 0022 widens mcp_tool_pins' primary key: PostgreSQL alters it in place,
	// SQLite rebuilds the table under this name and renames it.
	"table mcp_tool_pins_scoped": true,
}

// objects lists the names after CREATE TABLE / CREATE [UNIQUE] INDEX.
func objects(sql string) []string {
	var out []string
	fields := strings.Fields(sql)
	for i := 0; i+2 < len(fields); i++ {
		if !strings.EqualFold(fields[i], "CREATE") {
			continue
		}
		j := i + 1
		if strings.EqualFold(fields[j], "UNIQUE") {
			j++
		}
		if strings.EqualFold(fields[j], "TABLE") || strings.EqualFold(fields[j], "INDEX") {
			if o := strings.ToLower(fields[j]) + " " + fields[j+1]; !dialectOnly[o] {
				out = append(out, o)
			}
		}
	}
	return out
}

func TestListUnknownDialect(t *testing.T) {
	if _, err := List("mysql"); err == nil {
		t.Fatal("List(mysql) succeeded")
	}
}
