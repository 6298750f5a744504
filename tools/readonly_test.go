package tools

import "testing"

// Of the workspace tools only the readers are read-only: the audit log
// records every call of the others.
func TestWorkspaceToolsReadOnly(t *testing.T) {
	dir := t.TempDir()
	fetch, err := NewHTTPFetch(FetchConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tool Tool
		want bool
	}{
		{NewReadFile(dir), true},
		{NewListFiles(dir), true},
		{NewWriteFile(dir), false},
		{NewEditFile(dir), false},
		{fetch, false},
	} {
		if got := IsReadOnly(tc.tool); got != tc.want {
			t.Errorf("%s: read-only %v, want %v", tc.tool.Spec().Name, got, tc.want)
		}
	}
}
