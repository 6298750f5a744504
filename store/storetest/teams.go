package storetest

import (
	"errors"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

var teamCases = []testCase{
	{"Team/AgentParent", testTeamAgentParent},
	{"Team/RoleCRUD", testTeamRoleCRUD},
	{"Team/RoleIsolation", testTeamRoleIsolation},
	{"Team/GroupCRUD", testTeamGroupCRUD},
	{"Team/Members", testTeamMembers},
	{"Team/MemberIsolation", testTeamMemberIsolation},
	{"Team/UpdateRoleLead", testTeamUpdateRoleLead},
	{"Team/DeleteRole", testTeamDeleteRole},
	{"Team/DeleteGroup", testTeamDeleteGroup},
	{"Team/AgentMemberships", testTeamAgentMemberships},
	{"Team/CreateGroupWithMembers", testTeamCreateGroupWithMembers},
	{"Team/DeleteAgentMemberships", testTeamDeleteAgentMemberships},
	{"Team/CreateRunIdempotent", testTeamCreateRunIdempotent},
	{"Team/FinishOutbox", testTeamFinishOutbox},
	{"Team/ClaimGroupBoundary", testTeamClaimGroupBoundary},
	{"Team/GroupRun", testTeamGroupRun},
	{"Team/ActiveGroupRuns", testTeamActiveGroupRuns},
	{"Team/ListRunsFilters", testTeamListRunsFilters},
	{"Team/RunStats", testTeamRunStats},
}

func createRole(t *testing.T, s store.Store, r store.Role) store.Role {
	t.Helper()
	out, err := s.CreateRole(t.Context(), r)
	must(t, err)
	return out
}

func createGroup(t *testing.T, s store.Store, scope store.Scope, id string) store.Group {
	t.Helper()
	g, err := s.CreateGroup(t.Context(), store.Group{Scope: scope, ID: id, Name: "group " + id})
	must(t, err)
	return g
}

func addMember(t *testing.T, s store.Store, scope store.Scope, groupID, agentID, roleID string) store.GroupMember {
	t.Helper()
	m, err := s.AddMember(t.Context(), store.GroupMember{Scope: scope, GroupID: groupID, AgentID: agentID, RoleID: roleID})
	must(t, err)
	return m
}

// memberKeys names members as group/agent/role.
func memberKeys(ms []store.GroupMember) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.GroupID + "/" + m.AgentID + "/" + m.RoleID
	}
	return out
}

func listMembers(t *testing.T, s store.Store, scope store.Scope, groupID string) []string {
	t.Helper()
	ms, err := s.ListMembers(t.Context(), scope, groupID)
	must(t, err)
	return memberKeys(ms)
}

func runIDs(runs []store.Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func testTeamAgentParent(t *testing.T, s store.Store) {
	ctx := t.Context()
	child, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "c1", ParentID: "boss"})
	must(t, err)
	if child.ParentID != "boss" {
		t.Fatalf("CreateAgent ParentID = %q, want boss", child.ParentID)
	}
	got, err := s.GetAgent(ctx, scopeA, "c1")
	must(t, err)
	wantEqual(t, "GetAgent", got, child)
	ensured, err := s.EnsureAgent(ctx, store.Agent{Scope: scopeA, ID: "c2", ParentID: "boss"})
	must(t, err)
	if ensured.ParentID != "boss" {
		t.Fatalf("EnsureAgent ParentID = %q", ensured.ParentID)
	}
	again, err := s.EnsureAgent(ctx, store.Agent{Scope: scopeA, ID: "c2", ParentID: "other"})
	must(t, err)
	if again.ParentID != "boss" {
		t.Fatalf("EnsureAgent of an existing agent changed ParentID to %q", again.ParentID)
	}
	_, err = s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "c3", ParentID: "c1"})
	must(t, err)
	_, err = s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "boss"})
	must(t, err)
	name := "renamed"
	upd, err := s.UpdateAgent(ctx, scopeA, "c1", store.AgentPatch{Name: &name})
	must(t, err)
	if upd.ParentID != "boss" || upd.Name != "renamed" {
		t.Fatalf("UpdateAgent = %+v, want ParentID kept", upd)
	}
	list, _, err := s.ListAgents(ctx, scopeA, store.Page{})
	must(t, err)
	parents := map[string]string{}
	for _, a := range list {
		parents[a.ID] = a.ParentID
	}
	wantEqual(t, "ListAgents parents", parents, map[string]string{"c1": "boss", "c2": "boss", "c3": "c1", "boss": ""})

	// Another scope's child of "boss" is not counted in scopeA, nor scopeA's there.
	_, err = s.CreateAgent(ctx, store.Agent{Scope: scopeB, ID: "x", ParentID: "boss"})
	must(t, err)
	for _, c := range []struct {
		scope  store.Scope
		parent string
		want   int
	}{{scopeA, "boss", 2}, {scopeA, "c1", 1}, {scopeA, "c3", 0}, {scopeB, "boss", 1}, {scopeP, "boss", 0}, {scopeO, "boss", 0}} {
		n, err := s.CountChildren(ctx, c.scope, c.parent)
		must(t, err)
		if n != c.want {
			t.Fatalf("CountChildren(%+v, %s) = %d, want %d", c.scope, c.parent, n, c.want)
		}
	}
}

func testTeamRoleCRUD(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Created in reverse id order, so that creation order is not id order.
	inherit := createRole(t, s, store.Role{Scope: scopeA, ID: "r3", Name: "Writer", Description: "writes",
		SystemPrompt: "You write.", Model: "m1"})
	tick(t, s)
	none := createRole(t, s, store.Role{Scope: scopeA, ID: "r2", Name: "Reader", AllowedTools: []string{}})
	tick(t, s)
	some := createRole(t, s, store.Role{Scope: scopeA, ID: "r1", Name: "Lead", AllowedTools: []string{"web.search", "fs.read"},
		IsLead: true})

	if inherit.Scope != scopeA || inherit.ID != "r3" || inherit.Name != "Writer" || inherit.Description != "writes" ||
		inherit.SystemPrompt != "You write." || inherit.Model != "m1" || inherit.IsLead || inherit.AllowedTools != nil {
		t.Fatalf("CreateRole = %+v", inherit)
	}
	checkTime(t, "role CreatedAt", inherit.CreatedAt)
	if !inherit.UpdatedAt.Equal(inherit.CreatedAt) {
		t.Fatalf("new role: UpdatedAt %v != CreatedAt %v", inherit.UpdatedAt, inherit.CreatedAt)
	}
	if none.AllowedTools == nil || len(none.AllowedTools) != 0 {
		t.Fatalf("role with no tools: AllowedTools = %#v, want an empty non-nil list", none.AllowedTools)
	}
	if !some.IsLead {
		t.Fatalf("lead role = %+v", some)
	}
	wantEqual(t, "AllowedTools", some.AllowedTools, []string{"web.search", "fs.read"})
	for _, r := range []store.Role{inherit, none, some} {
		got, err := s.GetRole(ctx, scopeA, r.ID)
		must(t, err)
		wantEqual(t, "GetRole "+r.ID, got, r)
	}

	_, err := s.CreateRole(ctx, store.Role{Scope: scopeA, ID: "r1", Name: "again"})
	wantErr(t, err, store.ErrConflict)
	got, err := s.GetRole(ctx, scopeA, "r1")
	must(t, err)
	wantEqual(t, "role after a conflicting create", got, some)
	_, err = s.GetRole(ctx, scopeA, "missing")
	wantErr(t, err, store.ErrNotFound)

	roles, total, err := s.ListRoles(ctx, scopeA, store.Page{})
	must(t, err)
	if total != 3 {
		t.Fatalf("ListRoles total = %d, want 3", total)
	}
	wantEqual(t, "ListRoles", roles, []store.Role{inherit, none, some})
	page, total, err := s.ListRoles(ctx, scopeA, store.Page{Offset: 1, Limit: 1})
	must(t, err)
	if total != 3 {
		t.Fatalf("paged total = %d", total)
	}
	wantEqual(t, "ListRoles page", page, []store.Role{none})

	// Patches: only the named fields change.
	tick(t, s)
	upd, err := s.UpdateRole(ctx, scopeA, "r3", store.RolePatch{Name: ptr("Author"), AllowedTools: &[]string{}})
	must(t, err)
	if upd.Name != "Author" || upd.Description != "writes" || upd.SystemPrompt != "You write." || upd.Model != "m1" ||
		upd.IsLead || upd.AllowedTools == nil || len(upd.AllowedTools) != 0 {
		t.Fatalf("UpdateRole = %+v", upd)
	}
	if !upd.CreatedAt.Equal(inherit.CreatedAt) || !upd.UpdatedAt.After(inherit.UpdatedAt) {
		t.Fatalf("UpdateRole times: created %v updated %v; before %v", upd.CreatedAt, upd.UpdatedAt, inherit.UpdatedAt)
	}
	got, err = s.GetRole(ctx, scopeA, "r3")
	must(t, err)
	wantEqual(t, "GetRole after update", got, upd)
	upd, err = s.UpdateRole(ctx, scopeA, "r3", store.RolePatch{AllowedTools: &[]string{"x"}, Description: ptr("d"),
		SystemPrompt: ptr("p"), Model: ptr("m2")})
	must(t, err)
	if upd.Name != "Author" || upd.Description != "d" || upd.SystemPrompt != "p" || upd.Model != "m2" {
		t.Fatalf("UpdateRole = %+v", upd)
	}
	wantEqual(t, "AllowedTools after a set", upd.AllowedTools, []string{"x"})
	upd, err = s.UpdateRole(ctx, scopeA, "r3", store.RolePatch{ClearTools: true})
	must(t, err)
	if upd.AllowedTools != nil {
		t.Fatalf("AllowedTools after ClearTools = %#v, want nil", upd.AllowedTools)
	}
	got, err = s.GetRole(ctx, scopeA, "r3")
	must(t, err)
	if got.AllowedTools != nil {
		t.Fatalf("stored AllowedTools after ClearTools = %#v, want nil", got.AllowedTools)
	}
	upd, err = s.UpdateRole(ctx, scopeA, "r1", store.RolePatch{IsLead: ptr(false)})
	must(t, err)
	if upd.IsLead || upd.Name != "Lead" {
		t.Fatalf("UpdateRole IsLead=false = %+v", upd)
	}
	_, err = s.UpdateRole(ctx, scopeA, "missing", store.RolePatch{Name: ptr("x")})
	wantErr(t, err, store.ErrNotFound)

	must(t, s.DeleteRole(ctx, scopeA, "r2", false))
	_, err = s.GetRole(ctx, scopeA, "r2")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteRole(ctx, scopeA, "r2", false), store.ErrNotFound)
	wantErr(t, s.DeleteRole(ctx, scopeA, "r2", true), store.ErrNotFound)
	_, total, err = s.ListRoles(ctx, scopeA, store.Page{})
	must(t, err)
	if total != 2 {
		t.Fatalf("roles after a delete: %d, want 2", total)
	}
}

func testTeamRoleIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRole(t, s, store.Role{Scope: scopeA, ID: "r", Name: "A's"})
	for _, sc := range otherScopes {
		_, err := s.GetRole(ctx, sc, "r")
		wantErr(t, err, store.ErrNotFound)
		_, err = s.UpdateRole(ctx, sc, "r", store.RolePatch{Name: ptr("stolen")})
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, s.DeleteRole(ctx, sc, "r", true), store.ErrNotFound)
		roles, total, err := s.ListRoles(ctx, sc, store.Page{})
		must(t, err)
		if len(roles) != 0 || total != 0 {
			t.Fatalf("ListRoles(%+v) = %+v, %d", sc, roles, total)
		}
	}
	// The same id in another scope is another role.
	b := createRole(t, s, store.Role{Scope: scopeB, ID: "r", Name: "B's"})
	got, err := s.GetRole(ctx, scopeA, "r")
	must(t, err)
	if got.Name != "A's" || b.Name != "B's" {
		t.Fatalf("roles of two scopes: %+v, %+v", got, b)
	}
}

func testTeamGroupCRUD(t *testing.T, s store.Store) {
	ctx := t.Context()
	g2, err := s.CreateGroup(ctx, store.Group{Scope: scopeA, ID: "g2", Name: "Two", Description: "second"})
	must(t, err)
	if g2.Scope != scopeA || g2.ID != "g2" || g2.Name != "Two" || g2.Description != "second" || g2.Members != 0 {
		t.Fatalf("CreateGroup = %+v", g2)
	}
	checkTime(t, "group CreatedAt", g2.CreatedAt)
	if !g2.UpdatedAt.Equal(g2.CreatedAt) {
		t.Fatalf("new group: UpdatedAt %v != CreatedAt %v", g2.UpdatedAt, g2.CreatedAt)
	}
	tick(t, s)
	g1 := createGroup(t, s, scopeA, "g1")
	got, err := s.GetGroup(ctx, scopeA, "g2")
	must(t, err)
	wantEqual(t, "GetGroup", got, g2)
	_, err = s.CreateGroup(ctx, store.Group{Scope: scopeA, ID: "g2", Name: "again"})
	wantErr(t, err, store.ErrConflict)
	got, err = s.GetGroup(ctx, scopeA, "g2")
	must(t, err)
	wantEqual(t, "group after a conflicting create", got, g2)
	_, err = s.GetGroup(ctx, scopeA, "missing")
	wantErr(t, err, store.ErrNotFound)

	// Member counts.
	createRole(t, s, store.Role{Scope: scopeA, ID: "dev"})
	addMember(t, s, scopeA, "g1", "a", "dev")
	addMember(t, s, scopeA, "g1", "b", "dev")
	addMember(t, s, scopeA, "g2", "a", "dev")
	got, err = s.GetGroup(ctx, scopeA, "g1")
	must(t, err)
	if got.Members != 2 {
		t.Fatalf("GetGroup(g1).Members = %d, want 2", got.Members)
	}
	groups, total, err := s.ListGroups(ctx, scopeA, store.Page{})
	must(t, err)
	if total != 2 || len(groups) != 2 || groups[0].ID != "g2" || groups[1].ID != "g1" ||
		groups[0].Members != 1 || groups[1].Members != 2 {
		t.Fatalf("ListGroups = %+v, total %d; want g2 (1 member) then g1 (2)", groups, total)
	}
	g1.Members = 2
	wantEqual(t, "listed g1", groups[1], g1)
	page, total, err := s.ListGroups(ctx, scopeA, store.Page{Offset: 1, Limit: 5})
	must(t, err)
	if total != 2 || len(page) != 1 || page[0].ID != "g1" {
		t.Fatalf("ListGroups page = %+v, total %d", page, total)
	}

	tick(t, s)
	upd, err := s.UpdateGroup(ctx, scopeA, "g2", store.GroupPatch{Name: ptr("Deux")})
	must(t, err)
	if upd.Name != "Deux" || upd.Description != "second" || upd.Members != 1 || !upd.CreatedAt.Equal(g2.CreatedAt) ||
		!upd.UpdatedAt.After(g2.UpdatedAt) {
		t.Fatalf("UpdateGroup = %+v", upd)
	}
	upd, err = s.UpdateGroup(ctx, scopeA, "g2", store.GroupPatch{Description: ptr("")})
	must(t, err)
	if upd.Name != "Deux" || upd.Description != "" {
		t.Fatalf("UpdateGroup description = %+v", upd)
	}
	got, err = s.GetGroup(ctx, scopeA, "g2")
	must(t, err)
	wantEqual(t, "GetGroup after update", got, upd)
	_, err = s.UpdateGroup(ctx, scopeA, "missing", store.GroupPatch{Name: ptr("x")})
	wantErr(t, err, store.ErrNotFound)

	for _, sc := range otherScopes {
		_, err := s.GetGroup(ctx, sc, "g1")
		wantErr(t, err, store.ErrNotFound)
		_, err = s.UpdateGroup(ctx, sc, "g1", store.GroupPatch{Name: ptr("stolen")})
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, s.DeleteGroup(ctx, sc, "g1"), store.ErrNotFound)
		groups, total, err := s.ListGroups(ctx, sc, store.Page{})
		must(t, err)
		if len(groups) != 0 || total != 0 {
			t.Fatalf("ListGroups(%+v) = %+v, %d", sc, groups, total)
		}
	}
	got, err = s.GetGroup(ctx, scopeA, "g1")
	must(t, err)
	if got.Name != "group g1" || got.Members != 2 {
		t.Fatalf("g1 after other scopes' writes = %+v", got)
	}
}

func testTeamMembers(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRole(t, s, store.Role{Scope: scopeA, ID: "lead", Name: "Lead", IsLead: true})
	createRole(t, s, store.Role{Scope: scopeA, ID: "lead2", Name: "Co-lead", IsLead: true})
	createRole(t, s, store.Role{Scope: scopeA, ID: "dev", Name: "Developer"})
	createGroup(t, s, scopeA, "g")

	alice, err := s.AddMember(ctx, store.GroupMember{Scope: scopeA, GroupID: "g", AgentID: "alice", RoleID: "lead"})
	must(t, err)
	if alice.Scope != scopeA || alice.GroupID != "g" || alice.AgentID != "alice" || alice.MemberID != "alice" ||
		alice.RoleID != "lead" || alice.RoleName != "Lead" || !alice.IsLead {
		t.Fatalf("AddMember = %+v", alice)
	}
	checkTime(t, "member CreatedAt", alice.CreatedAt)
	got, err := s.GetMember(ctx, scopeA, "g", "alice")
	must(t, err)
	wantEqual(t, "GetMember", got, alice)
	tick(t, s)
	bob := addMember(t, s, scopeA, "g", "bob", "dev")
	if bob.IsLead || bob.RoleName != "Developer" {
		t.Fatalf("AddMember(dev) = %+v", bob)
	}

	// A second lead, of either lead role, is refused.
	_, err = s.AddMember(ctx, store.GroupMember{Scope: scopeA, GroupID: "g", AgentID: "carol", RoleID: "lead2"})
	wantErr(t, err, store.ErrLeadExists)
	_, err = s.AddMember(ctx, store.GroupMember{Scope: scopeA, GroupID: "g", AgentID: "carol", RoleID: "lead"})
	wantErr(t, err, store.ErrLeadExists)
	// Already a member.
	_, err = s.AddMember(ctx, store.GroupMember{Scope: scopeA, GroupID: "g", AgentID: "bob", RoleID: "dev"})
	wantErr(t, err, store.ErrConflict)
	// Missing group or role.
	_, err = s.AddMember(ctx, store.GroupMember{Scope: scopeA, GroupID: "nogroup", AgentID: "carol", RoleID: "dev"})
	wantErr(t, err, store.ErrNotFound)
	_, err = s.AddMember(ctx, store.GroupMember{Scope: scopeA, GroupID: "g", AgentID: "carol", RoleID: "norole"})
	wantErr(t, err, store.ErrNotFound)
	wantEqual(t, "members after refused adds", listMembers(t, s, scopeA, "g"), []string{"g/alice/lead", "g/bob/dev"})
	ms, err := s.ListMembers(ctx, scopeA, "g")
	must(t, err)
	wantEqual(t, "ListMembers", ms, []store.GroupMember{alice, bob})
	_, err = s.ListMembers(ctx, scopeA, "nogroup")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetMember(ctx, scopeA, "g", "carol")
	wantErr(t, err, store.ErrNotFound)

	// UpdateMember: a second lead is refused; the lead may change to another lead role.
	_, err = s.UpdateMember(ctx, scopeA, "g", "bob", "lead2")
	wantErr(t, err, store.ErrLeadExists)
	_, err = s.UpdateMember(ctx, scopeA, "g", "bob", "norole")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.UpdateMember(ctx, scopeA, "g", "carol", "dev")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.UpdateMember(ctx, scopeA, "nogroup", "bob", "dev")
	wantErr(t, err, store.ErrNotFound)
	got, err = s.GetMember(ctx, scopeA, "g", "bob")
	must(t, err)
	wantEqual(t, "bob after refused updates", got, bob)
	tick(t, s)
	a2, err := s.UpdateMember(ctx, scopeA, "g", "alice", "lead2")
	must(t, err)
	if a2.RoleID != "lead2" || a2.RoleName != "Co-lead" || !a2.IsLead || !a2.CreatedAt.Equal(alice.CreatedAt) ||
		!a2.UpdatedAt.After(alice.UpdatedAt) {
		t.Fatalf("UpdateMember(alice, lead2) = %+v", a2)
	}
	// The lead steps down: now bob may lead.
	_, err = s.UpdateMember(ctx, scopeA, "g", "alice", "dev")
	must(t, err)
	b2, err := s.UpdateMember(ctx, scopeA, "g", "bob", "lead")
	must(t, err)
	if !b2.IsLead || b2.RoleName != "Lead" {
		t.Fatalf("UpdateMember(bob, lead) = %+v", b2)
	}
	wantEqual(t, "members", listMembers(t, s, scopeA, "g"), []string{"g/alice/dev", "g/bob/lead"})
	// Role names are read from the role.
	_, err = s.UpdateRole(ctx, scopeA, "dev", store.RolePatch{Name: ptr("Engineer")})
	must(t, err)
	got, err = s.GetMember(ctx, scopeA, "g", "alice")
	must(t, err)
	if got.RoleName != "Engineer" || got.IsLead {
		t.Fatalf("member after a role rename = %+v", got)
	}

	must(t, s.RemoveMember(ctx, scopeA, "g", "bob"))
	wantErr(t, s.RemoveMember(ctx, scopeA, "g", "bob"), store.ErrNotFound)
	wantEqual(t, "members after a removal", listMembers(t, s, scopeA, "g"), []string{"g/alice/dev"})
	// With the lead gone, a lead may join again.
	addMember(t, s, scopeA, "g", "carol", "lead2")
	g, err := s.GetGroup(ctx, scopeA, "g")
	must(t, err)
	if g.Members != 2 {
		t.Fatalf("Members = %d, want 2", g.Members)
	}
	// An empty group lists no members.
	createGroup(t, s, scopeA, "empty")
	if ms := listMembers(t, s, scopeA, "empty"); len(ms) != 0 {
		t.Fatalf("members of an empty group: %v", ms)
	}
}

func testTeamMemberIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRole(t, s, store.Role{Scope: scopeA, ID: "dev"})
	createGroup(t, s, scopeA, "g")
	addMember(t, s, scopeA, "g", "alice", "dev")
	for _, sc := range otherScopes {
		_, err := s.GetMember(ctx, sc, "g", "alice")
		wantErr(t, err, store.ErrNotFound)
		_, err = s.ListMembers(ctx, sc, "g")
		wantErr(t, err, store.ErrNotFound)
		_, err = s.UpdateMember(ctx, sc, "g", "alice", "dev")
		wantErr(t, err, store.ErrNotFound)
		wantErr(t, s.RemoveMember(ctx, sc, "g", "alice"), store.ErrNotFound)
		// Neither A's group nor A's role is there.
		_, err = s.AddMember(ctx, store.GroupMember{Scope: sc, GroupID: "g", AgentID: "bob", RoleID: "dev"})
		wantErr(t, err, store.ErrNotFound)
		ms, err := s.AgentMemberships(ctx, sc, "alice")
		must(t, err)
		if len(ms) != 0 {
			t.Fatalf("AgentMemberships(%+v) = %+v", sc, ms)
		}
		must(t, s.RemoveAgentMemberships(ctx, sc, "alice"))
		n, err := s.CountChildren(ctx, sc, "")
		must(t, err)
		if n != 0 {
			t.Fatalf("CountChildren(%+v) = %d", sc, n)
		}
	}
	wantEqual(t, "A's members after other scopes' writes", listMembers(t, s, scopeA, "g"), []string{"g/alice/dev"})
	// Another scope's group of the same id, with its own role, does not mix.
	createRole(t, s, store.Role{Scope: scopeB, ID: "dev"})
	createGroup(t, s, scopeB, "g")
	addMember(t, s, scopeB, "g", "bob", "dev")
	wantEqual(t, "A's members", listMembers(t, s, scopeA, "g"), []string{"g/alice/dev"})
	wantEqual(t, "B's members", listMembers(t, s, scopeB, "g"), []string{"g/bob/dev"})
}

func testTeamUpdateRoleLead(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRole(t, s, store.Role{Scope: scopeA, ID: "lead", IsLead: true})
	createRole(t, s, store.Role{Scope: scopeA, ID: "r1"})
	createRole(t, s, store.Role{Scope: scopeA, ID: "r2"})
	createRole(t, s, store.Role{Scope: scopeA, ID: "r3"})
	createGroup(t, s, scopeA, "g")
	createGroup(t, s, scopeA, "h")
	addMember(t, s, scopeA, "g", "alice", "lead")
	addMember(t, s, scopeA, "g", "bob", "r1")
	addMember(t, s, scopeA, "h", "carol", "r2")
	addMember(t, s, scopeA, "h", "dave", "r2")
	addMember(t, s, scopeA, "h", "erin", "r3")

	// r1 as a lead would give g two leads (alice's lead and bob's r1).
	_, err := s.UpdateRole(ctx, scopeA, "r1", store.RolePatch{IsLead: ptr(true), Name: ptr("changed")})
	wantErr(t, err, store.ErrLeadExists)
	r1, err := s.GetRole(ctx, scopeA, "r1")
	must(t, err)
	if r1.IsLead || r1.Name != "" {
		t.Fatalf("r1 after a refused update = %+v", r1)
	}
	// r2 as a lead would give h two leads (carol and dave).
	_, err = s.UpdateRole(ctx, scopeA, "r2", store.RolePatch{IsLead: ptr(true)})
	wantErr(t, err, store.ErrLeadExists)
	// r3 has one member in a group without a lead: fine.
	r3, err := s.UpdateRole(ctx, scopeA, "r3", store.RolePatch{IsLead: ptr(true)})
	must(t, err)
	if !r3.IsLead {
		t.Fatalf("r3 = %+v", r3)
	}
	m, err := s.GetMember(ctx, scopeA, "h", "erin")
	must(t, err)
	if !m.IsLead {
		t.Fatalf("erin after r3 became a lead role = %+v", m)
	}
	// Now h has a lead: r2 is refused for that reason too, even with dave gone.
	must(t, s.RemoveMember(ctx, scopeA, "h", "dave"))
	_, err = s.UpdateRole(ctx, scopeA, "r2", store.RolePatch{IsLead: ptr(true)})
	wantErr(t, err, store.ErrLeadExists)
	must(t, s.RemoveMember(ctx, scopeA, "h", "erin"))
	r2, err := s.UpdateRole(ctx, scopeA, "r2", store.RolePatch{IsLead: ptr(true)})
	must(t, err)
	if !r2.IsLead {
		t.Fatalf("r2 = %+v", r2)
	}
	// Other changes of a role need no lead check; neither does stepping down.
	_, err = s.UpdateRole(ctx, scopeA, "r1", store.RolePatch{Name: ptr("renamed")})
	must(t, err)
	_, err = s.UpdateRole(ctx, scopeA, "lead", store.RolePatch{IsLead: ptr(false)})
	must(t, err)
	r1, err = s.UpdateRole(ctx, scopeA, "r1", store.RolePatch{IsLead: ptr(true)})
	must(t, err)
	if !r1.IsLead || r1.Name != "renamed" {
		t.Fatalf("r1 = %+v", r1)
	}
	// A lead in another scope's group of the same id does not count, nor
	// does a member of the same role id there.
	createRole(t, s, store.Role{Scope: scopeA, ID: "r4"})
	createGroup(t, s, scopeA, "k")
	addMember(t, s, scopeA, "k", "zed", "r4")
	createRole(t, s, store.Role{Scope: scopeB, ID: "r4"})
	createRole(t, s, store.Role{Scope: scopeB, ID: "lead", IsLead: true})
	createGroup(t, s, scopeB, "k")
	addMember(t, s, scopeB, "k", "x", "lead")
	addMember(t, s, scopeB, "k", "zed", "r4")
	_, err = s.UpdateRole(ctx, scopeB, "r4", store.RolePatch{IsLead: ptr(true)})
	wantErr(t, err, store.ErrLeadExists)
	r4, err := s.UpdateRole(ctx, scopeA, "r4", store.RolePatch{IsLead: ptr(true)})
	must(t, err)
	if !r4.IsLead {
		t.Fatalf("r4 = %+v", r4)
	}
}

func testTeamDeleteRole(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRole(t, s, store.Role{Scope: scopeA, ID: "dev"})
	createRole(t, s, store.Role{Scope: scopeA, ID: "qa"})
	createGroup(t, s, scopeA, "g")
	createGroup(t, s, scopeA, "h")
	addMember(t, s, scopeA, "g", "alice", "dev")
	addMember(t, s, scopeA, "g", "bob", "qa")
	addMember(t, s, scopeA, "h", "alice", "dev")
	// The same role id in another scope, with a member there.
	createRole(t, s, store.Role{Scope: scopeB, ID: "dev"})
	createGroup(t, s, scopeB, "g")
	addMember(t, s, scopeB, "g", "alice", "dev")

	err := s.DeleteRole(ctx, scopeA, "dev", false)
	wantErr(t, err, store.ErrInUse)
	if _, err := s.GetRole(ctx, scopeA, "dev"); err != nil {
		t.Fatalf("role after a refused delete: %v", err)
	}
	wantEqual(t, "g's members after a refused delete", listMembers(t, s, scopeA, "g"), []string{"g/alice/dev", "g/bob/qa"})

	must(t, s.DeleteRole(ctx, scopeA, "dev", true))
	_, err = s.GetRole(ctx, scopeA, "dev")
	wantErr(t, err, store.ErrNotFound)
	wantEqual(t, "g's members after a cascade", listMembers(t, s, scopeA, "g"), []string{"g/bob/qa"})
	wantEqual(t, "h's members after a cascade", listMembers(t, s, scopeA, "h"), []string{})
	ms, err := s.AgentMemberships(ctx, scopeA, "alice")
	must(t, err)
	if len(ms) != 0 {
		t.Fatalf("alice's memberships after a cascade: %+v", ms)
	}
	// Groups stay, and another scope's role and members are untouched.
	g, err := s.GetGroup(ctx, scopeA, "h")
	must(t, err)
	if g.Members != 0 {
		t.Fatalf("h = %+v", g)
	}
	if _, err := s.GetRole(ctx, scopeB, "dev"); err != nil {
		t.Fatalf("B's role: %v", err)
	}
	wantEqual(t, "B's members", listMembers(t, s, scopeB, "g"), []string{"g/alice/dev"})
	// A role without members is deleted without cascade; a missing one is not found.
	must(t, s.DeleteRole(ctx, scopeA, "qa", true))
	wantEqual(t, "g's members", listMembers(t, s, scopeA, "g"), []string{})
	wantErr(t, s.DeleteRole(ctx, scopeA, "qa", false), store.ErrNotFound)
	createRole(t, s, store.Role{Scope: scopeA, ID: "unused"})
	must(t, s.DeleteRole(ctx, scopeA, "unused", false))
}

func testTeamDeleteGroup(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRole(t, s, store.Role{Scope: scopeA, ID: "dev"})
	createGroup(t, s, scopeA, "g")
	createGroup(t, s, scopeA, "h")
	addMember(t, s, scopeA, "g", "alice", "dev")
	addMember(t, s, scopeA, "g", "bob", "dev")
	addMember(t, s, scopeA, "h", "alice", "dev")

	must(t, s.DeleteGroup(ctx, scopeA, "g"))
	_, err := s.GetGroup(ctx, scopeA, "g")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.ListMembers(ctx, scopeA, "g")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetMember(ctx, scopeA, "g", "alice")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteGroup(ctx, scopeA, "g"), store.ErrNotFound)
	ms, err := s.AgentMemberships(ctx, scopeA, "alice")
	must(t, err)
	wantEqual(t, "alice's memberships", memberKeys(ms), []string{"h/alice/dev"})
	// The role stays; a new group of the same id starts empty.
	if _, err := s.GetRole(ctx, scopeA, "dev"); err != nil {
		t.Fatalf("role after a group delete: %v", err)
	}
	g := createGroup(t, s, scopeA, "g")
	if g.Members != 0 {
		t.Fatalf("recreated group = %+v", g)
	}
	wantEqual(t, "recreated group's members", listMembers(t, s, scopeA, "g"), []string{})
	wantEqual(t, "h's members", listMembers(t, s, scopeA, "h"), []string{"h/alice/dev"})
	ms, err = s.AgentMemberships(ctx, scopeA, "bob")
	must(t, err)
	if len(ms) != 0 {
		t.Fatalf("bob's memberships after his group's delete: %+v", ms)
	}
}

func testTeamAgentMemberships(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRole(t, s, store.Role{Scope: scopeA, ID: "lead", Name: "Lead", IsLead: true})
	createRole(t, s, store.Role{Scope: scopeA, ID: "dev", Name: "Dev"})
	createGroup(t, s, scopeA, "z")
	createGroup(t, s, scopeA, "a")
	// Joined z first, then a: oldest first is z, a.
	mz := addMember(t, s, scopeA, "z", "alice", "lead")
	tick(t, s)
	ma := addMember(t, s, scopeA, "a", "alice", "dev")
	addMember(t, s, scopeA, "a", "bob", "lead")
	ms, err := s.AgentMemberships(ctx, scopeA, "alice")
	must(t, err)
	wantEqual(t, "AgentMemberships", ms, []store.GroupMember{mz, ma})
	if !ms[0].IsLead || ms[0].RoleName != "Lead" || ms[1].IsLead || ms[1].RoleName != "Dev" {
		t.Fatalf("memberships = %+v", ms)
	}
	none, err := s.AgentMemberships(ctx, scopeA, "nobody")
	must(t, err)
	if none == nil || len(none) != 0 {
		t.Fatalf("AgentMemberships(nobody) = %#v, want an empty list", none)
	}
	// The same agent id in another scope.
	createRole(t, s, store.Role{Scope: scopeP, ID: "dev"})
	createGroup(t, s, scopeP, "a")
	addMember(t, s, scopeP, "a", "alice", "dev")

	must(t, s.RemoveAgentMemberships(ctx, scopeA, "alice"))
	ms, err = s.AgentMemberships(ctx, scopeA, "alice")
	must(t, err)
	if len(ms) != 0 {
		t.Fatalf("memberships after RemoveAgentMemberships: %+v", ms)
	}
	wantEqual(t, "a's members", listMembers(t, s, scopeA, "a"), []string{"a/bob/lead"})
	wantEqual(t, "z's members", listMembers(t, s, scopeA, "z"), []string{})
	wantEqual(t, "P's members", listMembers(t, s, scopeP, "a"), []string{"a/alice/dev"})
	must(t, s.RemoveAgentMemberships(ctx, scopeA, "alice")) // none left: not an error
}

// testTeamCreateGroupWithMembers: a group and its members are stored
// together or not at all; a refused member leaves no half-made group.
func testTeamCreateGroupWithMembers(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRole(t, s, store.Role{Scope: scopeA, ID: "lead", Name: "Lead", IsLead: true})
	createRole(t, s, store.Role{Scope: scopeA, ID: "lead2", Name: "Co-lead", IsLead: true})
	createRole(t, s, store.Role{Scope: scopeA, ID: "dev", Name: "Developer"})
	createRole(t, s, store.Role{Scope: scopeB, ID: "qa", Name: "QA"})

	g, ms, err := s.CreateGroupWithMembers(ctx, store.Group{Scope: scopeA, ID: "g", Name: "G", Description: "d"},
		[]store.GroupMember{{AgentID: "alice", RoleID: "lead"}, {MemberID: "bob", RoleID: "dev"}})
	must(t, err)
	if g.Scope != scopeA || g.ID != "g" || g.Name != "G" || g.Description != "d" || g.Members != 2 {
		t.Fatalf("CreateGroupWithMembers = %+v", g)
	}
	checkTime(t, "group CreatedAt", g.CreatedAt)
	got, err := s.GetGroup(ctx, scopeA, "g")
	must(t, err)
	wantEqual(t, "GetGroup", got, g)
	stored, err := s.ListMembers(ctx, scopeA, "g")
	must(t, err)
	wantEqual(t, "members returned", ms, stored)
	if !ms[0].IsLead || ms[0].RoleName != "Lead" || ms[1].AgentID != "bob" || ms[1].IsLead {
		t.Fatalf("members = %+v", ms)
	}
	// No members is a plain group.
	g0, ms0, err := s.CreateGroupWithMembers(ctx, store.Group{Scope: scopeA, ID: "empty", Name: "E"}, nil)
	must(t, err)
	if g0.Members != 0 || len(ms0) != 0 {
		t.Fatalf("group without members = %+v, %+v", g0, ms0)
	}

	refused := []struct {
		name    string
		id      string
		members []store.GroupMember
		want    error
	}{
		{"a missing role after a good member", "h", []store.GroupMember{{AgentID: "alice", RoleID: "dev"}, {AgentID: "bob", RoleID: "norole"}}, store.ErrNotFound},
		{"another scope's role", "h", []store.GroupMember{{AgentID: "alice", RoleID: "qa"}}, store.ErrNotFound},
		{"two leads", "h", []store.GroupMember{{AgentID: "alice", RoleID: "lead"}, {AgentID: "bob", RoleID: "lead2"}}, store.ErrLeadExists},
		{"an agent listed twice", "h", []store.GroupMember{{AgentID: "alice", RoleID: "dev"}, {AgentID: "alice", RoleID: "lead"}}, store.ErrConflict},
		{"a taken group id", "g", []store.GroupMember{{AgentID: "carol", RoleID: "dev"}}, store.ErrConflict},
	}
	for _, r := range refused {
		_, _, err := s.CreateGroupWithMembers(ctx, store.Group{Scope: scopeA, ID: r.id, Name: "refused"}, r.members)
		if !errors.Is(err, r.want) {
			t.Fatalf("%s: %v, want %v", r.name, err, r.want)
		}
	}
	_, err = s.GetGroup(ctx, scopeA, "h")
	wantErr(t, err, store.ErrNotFound)
	ms, err = s.AgentMemberships(ctx, scopeA, "carol")
	must(t, err)
	if len(ms) != 0 {
		t.Fatalf("a refused create left memberships: %+v", ms)
	}
	wantEqual(t, "g's members after refused creates", listMembers(t, s, scopeA, "g"), []string{"g/alice/lead", "g/bob/dev"})
	got, err = s.GetGroup(ctx, scopeA, "g")
	must(t, err)
	wantEqual(t, "g after refused creates", got, g)
}

// testTeamDeleteAgentMemberships: deleting a member agent is refused
// (ErrInUse, nothing deleted) unless cascade, which removes the agent and its
// memberships together.
func testTeamDeleteAgentMemberships(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRole(t, s, store.Role{Scope: scopeA, ID: "dev", Name: "Dev"})
	createGroup(t, s, scopeA, "g1")
	createGroup(t, s, scopeA, "g2")
	for _, id := range []string{"alice", "bob"} {
		_, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: id, Name: id})
		must(t, err)
		addMember(t, s, scopeA, "g1", id, "dev")
	}
	addMember(t, s, scopeA, "g2", "alice", "dev")

	wantErr(t, s.DeleteAgent(ctx, scopeA, "alice", false), store.ErrInUse)
	_, err := s.GetAgent(ctx, scopeA, "alice")
	must(t, err)
	ms, err := s.AgentMemberships(ctx, scopeA, "alice")
	must(t, err)
	if len(ms) != 2 {
		t.Fatalf("memberships after a refused delete: %+v", ms)
	}
	for _, sc := range otherScopes {
		wantErr(t, s.DeleteAgent(ctx, sc, "alice", true), store.ErrNotFound)
	}

	must(t, s.DeleteAgent(ctx, scopeA, "alice", true))
	_, err = s.GetAgent(ctx, scopeA, "alice")
	wantErr(t, err, store.ErrNotFound)
	ms, err = s.AgentMemberships(ctx, scopeA, "alice")
	must(t, err)
	if len(ms) != 0 {
		t.Fatalf("memberships after a cascading delete: %+v", ms)
	}
	wantEqual(t, "g1's members", listMembers(t, s, scopeA, "g1"), []string{"g1/bob/dev"})
	wantErr(t, s.DeleteAgent(ctx, scopeA, "alice", true), store.ErrNotFound)
	// Without memberships, no cascade is needed.
	must(t, s.RemoveMember(ctx, scopeA, "g1", "bob"))
	must(t, s.DeleteAgent(ctx, scopeA, "bob", false))
}

func testTeamCreateRunIdempotent(t *testing.T, s store.Store) {
	ctx := t.Context()
	nr := store.NewRun{Scope: scopeA, RunID: "member-run", MessageID: "member-msg", AgentID: "dev", SessionKey: "s",
		GroupID: "g", ParentRunID: "group-run", RoleID: "coder", Input: "build it", SenderType: store.SenderGroup,
		SenderID: "g", Events: []store.Event{
			{Type: "message.task", RunID: "group-run", Payload: payload(map[string]string{"to": "dev"})},
			{Type: "run.created", AgentID: "someone", GroupID: "other", StepID: "1"},
		}}
	r, m, err := s.CreateRun(ctx, nr)
	must(t, err)
	if r.ID != "member-run" || r.AgentID != "dev" || r.GroupID != "g" || r.ParentRunID != "group-run" ||
		r.RoleID != "coder" || r.Status != store.RunPending {
		t.Fatalf("CreateRun run = %+v", r)
	}
	if m.GroupID != "g" || m.RunID != "member-run" || m.Kind != store.MessageKindRun || m.SenderType != store.SenderGroup {
		t.Fatalf("CreateRun message = %+v", m)
	}
	got, err := s.GetRun(ctx, scopeA, "member-run")
	must(t, err)
	wantEqual(t, "GetRun", got, r)
	msgs, _, err := s.ListMessages(ctx, scopeA, "dev", "", store.Page{})
	must(t, err)
	wantEqual(t, "messages", msgs, []store.Message{m})

	events, total := listEvents(t, s, scopeA, store.EventFilter{})
	if total != 2 || len(events) != 2 {
		t.Fatalf("events after CreateRun: %+v", events)
	}
	e0, e1 := events[0], events[1]
	if e0.Type != "message.task" || e0.RunID != "group-run" || e0.AgentID != "dev" || e0.GroupID != "g" ||
		e0.Scope != scopeA || e0.ID <= 0 || string(e0.Payload) != `{"to":"dev"}` {
		t.Fatalf("first event = %+v", e0)
	}
	if e1.Type != "run.created" || e1.RunID != "member-run" || e1.AgentID != "someone" || e1.GroupID != "other" ||
		e1.StepID != "1" || e1.ID <= e0.ID {
		t.Fatalf("second event = %+v", e1)
	}
	checkTime(t, "event TS", e0.TS)

	// The same run id again (a retry): ErrConflict, and nothing more stored.
	retry := nr
	retry.MessageID = "member-msg-2"
	retry.Input = "other input"
	_, _, err = s.CreateRun(ctx, retry)
	wantErr(t, err, store.ErrConflict)
	if errors.Is(err, store.ErrNotFound) {
		t.Fatalf("conflict also wraps ErrNotFound: %v", err)
	}
	if _, total := listEvents(t, s, scopeA, store.EventFilter{}); total != 2 {
		t.Fatalf("events after a conflicting CreateRun: %d, want 2", total)
	}
	msgs, total, err = s.ListMessages(ctx, scopeA, "", "", store.Page{})
	must(t, err)
	if total != 1 || msgs[0].ID != "member-msg" {
		t.Fatalf("messages after a conflicting CreateRun: %+v", msgs)
	}
	got, err = s.GetRun(ctx, scopeA, "member-run")
	must(t, err)
	wantEqual(t, "run after a conflicting CreateRun", got, r)

	// Claimed, the pending run keeps its group, parent and role.
	c := claim(t, s, scopeA, "dev")
	if c.Run.ID != "member-run" || c.Run.GroupID != "g" || c.Run.ParentRunID != "group-run" || c.Run.RoleID != "coder" ||
		c.Run.Status != store.RunRunning {
		t.Fatalf("claimed run = %+v", c.Run)
	}
	wantEqual(t, "claimed messages", c.Messages, []store.Message{m})
	resumed := claim(t, s, scopeA, "dev")
	if !resumed.Resumed {
		t.Fatalf("second claim not resumed: %+v", resumed)
	}
	wantEqual(t, "resumed run", resumed.Run, c.Run)
	got, err = s.GetRun(ctx, scopeA, "member-run")
	must(t, err)
	wantEqual(t, "stored claimed run", got, c.Run)
	// Another scope may use the same ids.
	other := nr
	other.Scope = scopeO
	_, _, err = s.CreateRun(ctx, other)
	must(t, err)
	if _, total := listEvents(t, s, scopeA, store.EventFilter{}); total != 2 {
		t.Fatalf("scopeA's events after scopeO's CreateRun: %d", total)
	}
}

func testTeamFinishOutbox(t *testing.T, s store.Store) {
	ctx := t.Context()
	enqueue(t, s, scopeA, "child", "s", "do the thing")
	c := claim(t, s, scopeA, "child")
	enqueue(t, s, scopeA, "parent", "p", "earlier")
	outbox := []store.NewMessage{
		{ID: "report-1", AgentID: "parent", SessionKey: "p", GroupID: "g", SenderType: store.SenderAgent,
			SenderID: "child", Content: "done: 42"},
		{Scope: scopeA, ID: "report-2", AgentID: "watcher", SessionKey: "w", SenderType: store.SenderAgent,
			SenderID: "child", Content: "fyi"},
	}
	// An outbox message for another scope is refused, and the run stays running.
	bad := append([]store.NewMessage{}, outbox...)
	bad[1].Scope = scopeB
	if _, err := s.FinishRun(ctx, scopeA, c.Run.ID, store.RunResult{Status: store.RunCompleted, Outbox: bad}, nil); err == nil {
		t.Fatal("FinishRun with an outbox message of another scope succeeded")
	}
	r, err := s.GetRun(ctx, scopeA, c.Run.ID)
	must(t, err)
	if r.Status != store.RunRunning {
		t.Fatalf("run after a refused finish = %+v", r)
	}

	_, err = s.FinishRun(ctx, scopeA, c.Run.ID, store.RunResult{Status: store.RunCompleted, Output: "42", Outbox: outbox},
		[]store.Event{{Type: "run.completed"}})
	must(t, err)
	inbox, total, err := s.ListMessages(ctx, scopeA, "parent", store.MessageUnread, store.Page{})
	must(t, err)
	if total != 2 || len(inbox) != 2 || inbox[0].Content != "earlier" {
		t.Fatalf("parent's inbox = %+v", inbox)
	}
	rep := inbox[1]
	if rep.ID != "report-1" || rep.Scope != scopeA || rep.AgentID != "parent" || rep.SessionKey != "p" || rep.GroupID != "g" ||
		rep.Kind != store.MessageKindMessage || rep.SenderType != store.SenderAgent || rep.SenderID != "child" ||
		rep.Content != "done: 42" || rep.RunID != "" || rep.Status != store.MessageUnread || rep.ReadAt != nil ||
		rep.Seq <= inbox[0].Seq {
		t.Fatalf("report = %+v", rep)
	}
	checkTime(t, "report CreatedAt", rep.CreatedAt)
	w, _, err := s.ListMessages(ctx, scopeA, "watcher", store.MessageUnread, store.Page{})
	must(t, err)
	if len(w) != 1 || w[0].ID != "report-2" || w[0].GroupID != "" {
		t.Fatalf("watcher's inbox = %+v", w)
	}
	// The child's own message was read by the finish.
	own, _, err := s.ListMessages(ctx, scopeA, "child", store.MessageUnread, store.Page{})
	must(t, err)
	if len(own) != 0 {
		t.Fatalf("child's unread after finish: %+v", own)
	}
	// The recipient works on it in its group, after its earlier message.
	pc := claim(t, s, scopeA, "parent")
	wantEqual(t, "parent's first batch", contents(pc.Messages), []string{"earlier"})
	finish(t, s, scopeA, pc.Run.ID, "ok")
	pc = claim(t, s, scopeA, "parent")
	wantEqual(t, "parent's second batch", contents(pc.Messages), []string{"done: 42"})
	if pc.Run.GroupID != "g" {
		t.Fatalf("report's run = %+v, want group g", pc.Run)
	}

	// A run that has ended enqueues nothing.
	_, err = s.FinishRun(ctx, scopeA, c.Run.ID, store.RunResult{Status: store.RunCompleted, Outbox: []store.NewMessage{
		{ID: "report-3", AgentID: "watcher", Content: "again"}}}, nil)
	wantErr(t, err, store.ErrConflict)
	_, total, err = s.ListMessages(ctx, scopeA, "watcher", "", store.Page{})
	must(t, err)
	if total != 1 {
		t.Fatalf("watcher has %d messages after a conflicting finish, want 1", total)
	}
	// Nor does a pending run.
	pending, _ := createRun(t, s, scopeA, "child", "s", "later")
	_, err = s.FinishRun(ctx, scopeA, pending.ID, store.RunResult{Status: store.RunCompleted, Outbox: []store.NewMessage{
		{ID: "report-4", AgentID: "watcher", Content: "early"}}}, nil)
	wantErr(t, err, store.ErrConflict)
	_, total, err = s.ListMessages(ctx, scopeA, "watcher", "", store.Page{})
	must(t, err)
	if total != 1 {
		t.Fatalf("watcher has %d messages after finishing a pending run, want 1", total)
	}
	for _, sc := range otherScopes {
		_, total, err := s.ListMessages(ctx, sc, "", "", store.Page{})
		must(t, err)
		if total != 0 {
			t.Fatalf("scope %+v has %d messages", sc, total)
		}
	}
}

func testTeamClaimGroupBoundary(t *testing.T, s store.Store) {
	ctx := t.Context()
	send := func(session, group, content string) store.Message {
		t.Helper()
		msgs, err := s.EnqueueMessages(ctx, []store.NewMessage{{Scope: scopeA, ID: newID("msg"), AgentID: "a",
			SessionKey: session, GroupID: group, Content: content}})
		must(t, err)
		if msgs[0].GroupID != group {
			t.Fatalf("EnqueueMessages GroupID = %q, want %q", msgs[0].GroupID, group)
		}
		return msgs[0]
	}
	m1 := send("s", "g1", "m1")
	x := send("t", "", "x")
	m2 := send("s", "g1", "m2")
	m3 := send("s", "g2", "m3")
	m4 := send("s", "g1", "m4")
	m5 := send("s", "", "m5")
	listed, _, err := s.ListMessages(ctx, scopeA, "a", "", store.Page{})
	must(t, err)
	wantEqual(t, "listed messages", listed, []store.Message{m1, x, m2, m3, m4, m5})

	for _, want := range []struct {
		seqs  []int64
		group string
	}{
		{[]int64{m1.Seq, m2.Seq}, "g1"}, // another session's message is no boundary; another group is
		{[]int64{x.Seq}, ""},
		{[]int64{m3.Seq}, "g2"},
		{[]int64{m4.Seq}, "g1"},
		{[]int64{m5.Seq}, ""},
	} {
		c := claim(t, s, scopeA, "a")
		wantEqual(t, "batch", seqs(c.Messages), want.seqs)
		if c.Run.GroupID != want.group {
			t.Fatalf("run of %v: GroupID %q, want %q", want.seqs, c.Run.GroupID, want.group)
		}
		for _, m := range c.Messages {
			if m.GroupID != want.group {
				t.Fatalf("claimed message = %+v", m)
			}
		}
		got, err := s.GetRun(ctx, scopeA, c.Run.ID)
		must(t, err)
		wantEqual(t, "stored run", got, c.Run)
		finish(t, s, scopeA, c.Run.ID, "ok")
	}
	_, err = s.ClaimNextRun(ctx, scopeA, "a", newID("run"))
	wantErr(t, err, store.ErrNoWork)
}

func testTeamGroupRun(t *testing.T, s store.Store) {
	ctx := t.Context()
	state := []byte(`{"plan":["a","b"],"turn":0}`)
	r1, evs, err := s.CreateGroupRun(ctx, store.Run{Scope: scopeA, ID: "gr1", GroupID: "g", SessionKey: "gs",
		Input: "ship it"}, store.Checkpoint{Step: 0, State: state},
		[]store.Event{{Type: "group.started"}, {Type: "message.task", AgentID: "dev"}})
	must(t, err)
	if r1.Scope != scopeA || r1.ID != "gr1" || r1.AgentID != "" || r1.GroupID != "g" || r1.SessionKey != "gs" ||
		r1.Input != "ship it" || r1.Status != store.RunRunning || r1.EndedAt != nil {
		t.Fatalf("CreateGroupRun = %+v", r1)
	}
	checkTime(t, "CreatedAt", r1.CreatedAt)
	checkTimePtr(t, "StartedAt", r1.StartedAt)
	if len(evs) != 2 || evs[0].ID <= 0 || evs[1].ID <= evs[0].ID || evs[0].RunID != "gr1" || evs[0].GroupID != "g" ||
		evs[0].AgentID != "" || evs[1].AgentID != "dev" || evs[0].Scope != scopeA {
		t.Fatalf("CreateGroupRun events = %+v", evs)
	}
	listed, _ := listEvents(t, s, scopeA, store.EventFilter{RunID: "gr1"})
	wantEqual(t, "stored events", listed, asRead(evs))
	wantEqual(t, "CreateGroupRun RunPrev", runPrevs(evs), []int64{-1, evs[0].ID})
	got, err := s.GetRun(ctx, scopeA, "gr1")
	must(t, err)
	wantEqual(t, "GetRun", got, r1)
	cp, err := s.GetCheckpoint(ctx, scopeA, "gr1")
	must(t, err)
	if cp.RunID != "gr1" || cp.Step != 0 || string(cp.State) != string(state) {
		t.Fatalf("GetCheckpoint = %+v", cp)
	}
	checkTime(t, "checkpoint UpdatedAt", cp.UpdatedAt)

	// The same id again: ErrConflict, nothing more stored.
	_, _, err = s.CreateGroupRun(ctx, store.Run{Scope: scopeA, ID: "gr1", GroupID: "g"},
		store.Checkpoint{Step: 9, State: []byte(`{}`)}, []store.Event{{Type: "group.started"}})
	wantErr(t, err, store.ErrConflict)
	if _, total := listEvents(t, s, scopeA, store.EventFilter{RunID: "gr1"}); total != 2 {
		t.Fatalf("events after a conflicting CreateGroupRun: %d", total)
	}
	cp2, err := s.GetCheckpoint(ctx, scopeA, "gr1")
	must(t, err)
	wantEqual(t, "checkpoint after a conflicting CreateGroupRun", cp2, cp)
	// A group run has a group and no agent.
	if _, _, err := s.CreateGroupRun(ctx, store.Run{Scope: scopeA, ID: "x1"}, store.Checkpoint{}, nil); err == nil {
		t.Fatal("CreateGroupRun without a group succeeded")
	}
	if _, _, err := s.CreateGroupRun(ctx, store.Run{Scope: scopeA, ID: "x2", GroupID: "g", AgentID: "a"},
		store.Checkpoint{}, nil); err == nil {
		t.Fatal("CreateGroupRun with an agent succeeded")
	}
	if _, err := s.GetRun(ctx, scopeA, "x2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused group run stored: %v", err)
	}

	// A second group run of the scope (even of the same group) runs at the same time, as does an agent's run.
	r2, _, err := s.CreateGroupRun(ctx, store.Run{Scope: scopeA, ID: "gr2", GroupID: "g"}, store.Checkpoint{Step: 1}, nil)
	must(t, err)
	_, _, err = s.CreateGroupRun(ctx, store.Run{Scope: scopeA, ID: "gr3", GroupID: "h"}, store.Checkpoint{}, nil)
	must(t, err)
	if _, err := s.GetCheckpoint(ctx, scopeA, "gr2"); err != nil {
		t.Fatalf("GetCheckpoint(gr2) without state: %v", err)
	}
	enqueue(t, s, scopeA, "dev", "s", "work")
	ac := claim(t, s, scopeA, "dev")
	running, total, err := s.ListRuns(ctx, scopeA, store.RunFilter{Status: store.RunRunning}, store.Page{})
	must(t, err)
	if total != 4 {
		t.Fatalf("running runs = %v, want gr1, gr2, gr3 and the agent's", runIDs(running))
	}
	// Group runs are no agent's work.
	refs, err := s.ListAgentsWithWork(ctx)
	must(t, err)
	wantEqual(t, "ListAgentsWithWork", refs, []store.AgentRef{{Scope: scopeA, AgentID: "dev"}})
	finish(t, s, scopeA, ac.Run.ID, "ok")
	refs, err = s.ListAgentsWithWork(ctx)
	must(t, err)
	if len(refs) != 0 {
		t.Fatalf("ListAgentsWithWork with only group runs running = %+v", refs)
	}
	// No agent claims a group run.
	if _, err := s.ClaimNextRun(ctx, scopeA, "", newID("run")); err == nil {
		t.Fatal("ClaimNextRun for agent \"\" succeeded")
	}
	if got, err := s.GetRun(ctx, scopeA, "gr1"); err != nil || got.Status != store.RunRunning {
		t.Fatalf("gr1 after a claim for agent \"\": %+v, %v", got, err)
	}

	// Steps, cancel and finish work on a group run.
	step, err := s.SaveStep(ctx, scopeA, "gr1", &store.Checkpoint{Step: 2, State: []byte(`{"turn":2}`)},
		[]store.Event{{Type: "message.task", StepID: "2"}, {Type: "message.reply", AgentID: "dev", StepID: "2"}})
	must(t, err)
	if len(step) != 2 || step[0].AgentID != "" || step[0].GroupID != "g" || step[0].RunID != "gr1" ||
		step[1].AgentID != "dev" || step[1].GroupID != "g" || step[0].ID <= evs[1].ID {
		t.Fatalf("SaveStep events = %+v", step)
	}
	cp, err = s.GetCheckpoint(ctx, scopeA, "gr1")
	must(t, err)
	if cp.Step != 2 || string(cp.State) != `{"turn":2}` {
		t.Fatalf("checkpoint after SaveStep = %+v", cp)
	}
	cancelled, err := s.CancelRun(ctx, scopeA, "gr1")
	must(t, err)
	if !cancelled.CancelRequested || cancelled.Status != store.RunRunning || cancelled.Steps != 2 {
		t.Fatalf("CancelRun(gr1) = %+v", cancelled)
	}
	fin, err := s.FinishRun(ctx, scopeA, "gr1", store.RunResult{Status: store.RunCancelled, Output: "stopped", Steps: 2,
		Usage: store.Usage{TotalTokens: 7}, Outbox: []store.NewMessage{{ID: "bye", AgentID: "dev", GroupID: "g",
			SenderType: store.SenderGroup, SenderID: "g", Content: "stop"}}},
		[]store.Event{{Type: "run.cancelled"}})
	must(t, err)
	if len(fin) != 1 || fin[0].AgentID != "" || fin[0].GroupID != "g" || fin[0].RunID != "gr1" {
		t.Fatalf("FinishRun events = %+v", fin)
	}
	got, err = s.GetRun(ctx, scopeA, "gr1")
	must(t, err)
	if got.Status != store.RunCancelled || got.Output != "stopped" || got.Usage.TotalTokens != 7 || got.EndedAt == nil {
		t.Fatalf("finished group run = %+v", got)
	}
	inbox, _, err := s.ListMessages(ctx, scopeA, "dev", store.MessageUnread, store.Page{})
	must(t, err)
	if len(inbox) != 1 || inbox[0].ID != "bye" || inbox[0].GroupID != "g" {
		t.Fatalf("dev's inbox after the group run's finish = %+v", inbox)
	}
	_, err = s.FinishRun(ctx, scopeA, "gr1", store.RunResult{Status: store.RunCompleted}, nil)
	wantErr(t, err, store.ErrConflict)
	_, err = s.CancelRun(ctx, scopeA, "gr1")
	wantErr(t, err, store.ErrConflict)
	active, err := s.ActiveGroupRuns(ctx)
	must(t, err)
	wantEqual(t, "ActiveGroupRuns", runIDs(active), []string{"gr2", "gr3"})
	wantEqual(t, "active gr2", active[0], r2)

	_, err = s.GetCheckpoint(ctx, scopeA, "missing")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetCheckpoint(ctx, scopeA, ac.Run.ID) // an agent run that saved no step
	wantErr(t, err, store.ErrNotFound)
	for _, sc := range otherScopes {
		_, err := s.GetCheckpoint(ctx, sc, "gr2")
		wantErr(t, err, store.ErrNotFound)
		_, err = s.GetRun(ctx, sc, "gr2")
		wantErr(t, err, store.ErrNotFound)
		_, err = s.SaveStep(ctx, sc, "gr2", &store.Checkpoint{Step: 5}, []store.Event{{Type: "x"}})
		wantErr(t, err, store.ErrNotFound)
		_, err = s.FinishRun(ctx, sc, "gr2", store.RunResult{Status: store.RunCompleted}, nil)
		wantErr(t, err, store.ErrNotFound)
	}
	cp, err = s.GetCheckpoint(ctx, scopeA, "gr2")
	must(t, err)
	if cp.Step != 1 {
		t.Fatalf("gr2's checkpoint after other scopes' writes = %+v", cp)
	}
}

func testTeamActiveGroupRuns(t *testing.T, s store.Store) {
	ctx := t.Context()
	active, err := s.ActiveGroupRuns(ctx)
	must(t, err)
	if active == nil || len(active) != 0 {
		t.Fatalf("ActiveGroupRuns on an empty store = %#v", active)
	}
	type key struct {
		scope store.Scope
		id    string
	}
	want := []key{}
	for _, sc := range append([]store.Scope{scopeA}, otherScopes...) {
		r, _, err := s.CreateGroupRun(ctx, store.Run{Scope: sc, ID: "run", GroupID: "g"}, store.Checkpoint{}, nil)
		must(t, err)
		if r.Scope != sc {
			t.Fatalf("group run scope = %+v", r.Scope)
		}
		want = append(want, key{sc, "run"})
	}
	_, _, err = s.CreateGroupRun(ctx, store.Run{Scope: scopeB, ID: "done", GroupID: "g"}, store.Checkpoint{}, nil)
	must(t, err)
	finish(t, s, scopeB, "done", "ok")
	enqueue(t, s, scopeA, "agent", "s", "work")
	claim(t, s, scopeA, "agent") // an agent's running run is not a group run
	createRun(t, s, scopeA, "agent2", "s", "pending")

	active, err = s.ActiveGroupRuns(ctx)
	must(t, err)
	got := []key{}
	for _, r := range active {
		if r.AgentID != "" || r.Status != store.RunRunning || r.GroupID != "g" {
			t.Fatalf("active group run = %+v", r)
		}
		got = append(got, key{r.Scope, r.ID})
	}
	less := func(ks []key) func(i, j int) bool {
		return func(i, j int) bool {
			a, b := ks[i], ks[j]
			if a.scope != b.scope {
				return a.scope.OrgID+"\x00"+a.scope.UserID+"\x00"+a.scope.ProjectID <
					b.scope.OrgID+"\x00"+b.scope.UserID+"\x00"+b.scope.ProjectID
			}
			return a.id < b.id
		}
	}
	sort.Slice(got, less(got))
	sort.Slice(want, less(want))
	wantEqual(t, "ActiveGroupRuns", got, want)
}

func testTeamListRunsFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	g, _, err := s.CreateGroupRun(ctx, store.Run{Scope: scopeA, ID: "G", GroupID: "g"}, store.Checkpoint{}, nil)
	must(t, err)
	tick(t, s)
	mk := func(id, agent, parent, role string) {
		t.Helper()
		_, _, err := s.CreateRun(ctx, store.NewRun{Scope: scopeA, RunID: id, MessageID: "m-" + id, AgentID: agent,
			GroupID: "g", ParentRunID: parent, RoleID: role, Input: id})
		must(t, err)
		tick(t, s)
	}
	mk("m1", "dev", "G", "coder")
	mk("m2", "qa", "G", "tester")
	mk("m3", "dev", "H", "coder")
	mk("p1", "dev", "", "")
	_, _, err = s.CreateGroupRun(ctx, store.Run{Scope: scopeB, ID: "GB", GroupID: "g"}, store.Checkpoint{}, nil)
	must(t, err)
	_, _, err = s.CreateRun(ctx, store.NewRun{Scope: scopeB, RunID: "mb", MessageID: "mb", AgentID: "dev",
		ParentRunID: "G", RoleID: "coder"})
	must(t, err)

	for _, tc := range []struct {
		filter store.RunFilter
		want   []string
	}{
		{store.RunFilter{}, []string{"p1", "m3", "m2", "m1", "G"}},
		{store.RunFilter{Kind: store.RunKindGroup}, []string{"G"}},
		{store.RunFilter{Kind: store.RunKindAgent}, []string{"p1", "m3", "m2", "m1"}},
		{store.RunFilter{ParentRunID: "G"}, []string{"m2", "m1"}},
		{store.RunFilter{ParentRunID: "H"}, []string{"m3"}},
		{store.RunFilter{RoleID: "coder"}, []string{"m3", "m1"}},
		{store.RunFilter{RoleID: "coder", ParentRunID: "G"}, []string{"m1"}},
		{store.RunFilter{GroupID: "g", Kind: store.RunKindGroup}, []string{"G"}},
		{store.RunFilter{GroupID: "g", Kind: store.RunKindAgent, AgentID: "dev"}, []string{"p1", "m3", "m1"}},
		{store.RunFilter{Kind: store.RunKindGroup, Status: store.RunPending}, []string{}},
		{store.RunFilter{RoleID: "nobody"}, []string{}},
	} {
		runs, total, err := s.ListRuns(ctx, scopeA, tc.filter, store.Page{})
		must(t, err)
		wantEqual(t, "ListRuns ids", runIDs(runs), tc.want)
		if total != len(tc.want) {
			t.Fatalf("ListRuns(%+v) total = %d, want %d", tc.filter, total, len(tc.want))
		}
	}
	runs, _, err := s.ListRuns(ctx, scopeA, store.RunFilter{Kind: store.RunKindGroup}, store.Page{})
	must(t, err)
	wantEqual(t, "listed group run", runs, []store.Run{g})
	runs, _, err = s.ListRuns(ctx, scopeA, store.RunFilter{ParentRunID: "G", RoleID: "tester"}, store.Page{})
	must(t, err)
	if len(runs) != 1 || runs[0].ParentRunID != "G" || runs[0].RoleID != "tester" || runs[0].GroupID != "g" {
		t.Fatalf("listed member run = %+v", runs)
	}
	if _, _, err := s.ListRuns(ctx, scopeA, store.RunFilter{Kind: "robot"}, store.Page{}); err == nil {
		t.Fatal("ListRuns with an unknown kind succeeded")
	}
	for _, sc := range []store.Scope{scopeP, scopeO} {
		runs, total, err := s.ListRuns(ctx, sc, store.RunFilter{ParentRunID: "G"}, store.Page{})
		must(t, err)
		if len(runs) != 0 || total != 0 {
			t.Fatalf("ListRuns(%+v) = %v", sc, runIDs(runs))
		}
	}
	runs, _, err = s.ListRuns(ctx, scopeB, store.RunFilter{ParentRunID: "G"}, store.Page{})
	must(t, err)
	wantEqual(t, "B's member runs", runIDs(runs), []string{"mb"})
}

func testTeamRunStats(t *testing.T, s store.Store) {
	ctx := t.Context()
	mk := func(id, agent, role string) {
		t.Helper()
		_, _, err := s.CreateRun(ctx, store.NewRun{Scope: scopeA, RunID: id, MessageID: "m-" + id, AgentID: agent,
			GroupID: "g", ParentRunID: "G", RoleID: role, Input: id})
		must(t, err)
	}
	end := func(id, agent, status string, tokens int) {
		t.Helper()
		c := claim(t, s, scopeA, agent)
		if c.Run.ID != id {
			t.Fatalf("claimed %s, want %s", c.Run.ID, id)
		}
		time.Sleep(3 * time.Millisecond)
		_, err := s.FinishRun(ctx, scopeA, id, store.RunResult{Status: status, Usage: store.Usage{TotalTokens: tokens}}, nil)
		must(t, err)
	}
	_, _, err := s.CreateGroupRun(ctx, store.Run{Scope: scopeA, ID: "G", GroupID: "g"}, store.Checkpoint{}, nil)
	must(t, err)
	mk("r1", "a1", "dev")
	end("r1", "a1", store.RunCompleted, 10)
	mk("r2", "a2", "qa")
	end("r2", "a2", store.RunCompleted, 20)
	mk("r3", "a3", "dev")
	end("r3", "a3", store.RunFailed, 5)
	mk("r4", "a4", "qa")
	time.Sleep(2 * time.Millisecond)
	_, err = s.CancelRun(ctx, scopeA, "r4") // pending: cancelled at once, never started
	must(t, err)
	mk("r5", "a5", "qa") // pending
	mk("r6", "a6", "dev")
	claim(t, s, scopeA, "a6") // running
	// Runs of another group and scope are not counted.
	_, _, err = s.CreateRun(ctx, store.NewRun{Scope: scopeA, RunID: "o1", MessageID: "m-o1", AgentID: "a1", GroupID: "other"})
	must(t, err)
	_, _, err = s.CreateRun(ctx, store.NewRun{Scope: scopeB, RunID: "b1", MessageID: "m-b1", AgentID: "a1", GroupID: "g"})
	must(t, err)

	latency := func(ids ...string) float64 {
		t.Helper()
		var sum float64
		for _, id := range ids {
			r, err := s.GetRun(ctx, scopeA, id)
			must(t, err)
			start := r.CreatedAt
			if r.StartedAt != nil {
				start = *r.StartedAt
			}
			sum += float64(r.EndedAt.Sub(start).Microseconds()) / 1000
		}
		return sum / float64(len(ids))
	}
	check := func(filter store.RunFilter, want store.RunStats) {
		t.Helper()
		got, err := s.RunStats(ctx, scopeA, filter)
		must(t, err)
		if math.Abs(got.MeanLatencyMS-want.MeanLatencyMS) > 1e-6 || math.Abs(got.SuccessRate-want.SuccessRate) > 1e-9 {
			t.Fatalf("RunStats(%+v) = %+v, want %+v", filter, got, want)
		}
		got.MeanLatencyMS, got.SuccessRate = want.MeanLatencyMS, want.SuccessRate
		wantEqual(t, "RunStats", got, want)
	}
	lat := latency("r1", "r2", "r3", "r4")
	if lat < 2 {
		t.Fatalf("test setup: mean latency %v ms, want at least 2", lat)
	}
	check(store.RunFilter{GroupID: "g", Kind: store.RunKindAgent}, store.RunStats{Runs: 6, Completed: 2, Failed: 1,
		Cancelled: 1, Active: 2, SuccessRate: 0.5, Tokens: 35, MeanLatencyMS: lat})
	check(store.RunFilter{GroupID: "g"}, store.RunStats{Runs: 7, Completed: 2, Failed: 1, Cancelled: 1, Active: 3,
		SuccessRate: 0.5, Tokens: 35, MeanLatencyMS: lat})
	check(store.RunFilter{Kind: store.RunKindGroup}, store.RunStats{Runs: 1, Active: 1})
	check(store.RunFilter{RoleID: "dev"}, store.RunStats{Runs: 3, Completed: 1, Failed: 1, Active: 1, SuccessRate: 0.5,
		Tokens: 15, MeanLatencyMS: latency("r1", "r3")})
	check(store.RunFilter{RoleID: "qa"}, store.RunStats{Runs: 3, Completed: 1, Cancelled: 1, Active: 1,
		SuccessRate: 0.5, Tokens: 20, MeanLatencyMS: latency("r2", "r4")})
	check(store.RunFilter{AgentID: "a2"}, store.RunStats{Runs: 1, Completed: 1, SuccessRate: 1, Tokens: 20,
		MeanLatencyMS: latency("r2")})
	check(store.RunFilter{AgentID: "a1"}, store.RunStats{Runs: 2, Completed: 1, Active: 1, SuccessRate: 1, Tokens: 10,
		MeanLatencyMS: latency("r1")})
	check(store.RunFilter{AgentID: "a5"}, store.RunStats{Runs: 1, Active: 1})
	check(store.RunFilter{ParentRunID: "G", Status: store.RunCompleted}, store.RunStats{Runs: 2, Completed: 2,
		SuccessRate: 1, Tokens: 30, MeanLatencyMS: latency("r1", "r2")})
	check(store.RunFilter{AgentID: "nobody"}, store.RunStats{})
	for _, sc := range []store.Scope{scopeP, scopeO} {
		st, err := s.RunStats(ctx, sc, store.RunFilter{GroupID: "g"})
		must(t, err)
		if st != (store.RunStats{}) {
			t.Fatalf("RunStats(%+v) = %+v", sc, st)
		}
	}
	st, err := s.RunStats(ctx, scopeB, store.RunFilter{GroupID: "g"})
	must(t, err)
	if st != (store.RunStats{Runs: 1, Active: 1}) {
		t.Fatalf("RunStats(scopeB) = %+v", st)
	}
	if _, err := s.RunStats(ctx, scopeA, store.RunFilter{Kind: "robot"}); err == nil {
		t.Fatal("RunStats with an unknown kind succeeded")
	}
}
