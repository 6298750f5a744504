package skills_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openintern/openintern/skills"
	"github.com/openintern/openintern/store"
)

const goodMD = "---\nname: pdf-forms\ndescription: Fill PDF forms.\nallowed-tools: read_file, mcp1__*\nlicense: MIT\n---\n# PDF forms\n\nUse forms.py.\n"

func TestParseSkillMD(t *testing.T) {
	meta, body, err := skills.ParseSkillMD([]byte(goodMD))
	if err != nil {
		t.Fatal(err)
	}
	if meta.Name != "pdf-forms" || meta.Description != "Fill PDF forms." || body != "# PDF forms\n\nUse forms.py.\n" {
		t.Fatalf("meta %+v body %q", meta, body)
	}
	if strings.Join(meta.AllowedTools, ",") != "read_file,mcp1__*" {
		t.Fatalf("allowed tools %q", meta.AllowedTools)
	}
	list, _, err := skills.ParseSkillMD([]byte("---\r\nname: a\r\ndescription: d\r\nallowed-tools: [x, y, x]\r\n---\r\n"))
	if err != nil || strings.Join(list.AllowedTools, ",") != "x,y" {
		t.Fatalf("list form: %+v %v", list, err)
	}
	bad := map[string]string{
		"no front matter":    "# hi\n",
		"unclosed":           "---\nname: a\ndescription: d\n",
		"no name":            "---\ndescription: d\n---\n",
		"upper name":         "---\nname: PDF\ndescription: d\n---\n",
		"double hyphen":      "---\nname: a--b\ndescription: d\n---\n",
		"long name":          "---\nname: " + strings.Repeat("a", 65) + "\ndescription: d\n---\n",
		"no description":     "---\nname: a\n---\n",
		"long description":   "---\nname: a\ndescription: " + strings.Repeat("é", 1025) + "\n---\n",
		"bad yaml":           "---\nname: [a\ndescription: d\n---\n",
		"nul":                "---\nname: a\ndescription: d\x00\n---\n",
		"not utf8":           "---\nname: a\ndescription: \xff\n---\n",
		"tool with space":    "---\nname: a\ndescription: d\nallowed-tools: [\"rm -rf\"]\n---\n",
		"tools not a list":   "---\nname: a\ndescription: d\nallowed-tools: {a: b}\n---\n",
		"name is a map":      "---\nname: {a: b}\ndescription: d\n---\n",
		"description a list": "---\nname: a\ndescription: [d]\n---\n",
	}
	for what, md := range bad {
		if _, _, err := skills.ParseSkillMD([]byte(md)); !errors.Is(err, skills.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
}

type entry struct {
	name, body string
	link       bool
}

func zipOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.link {
			h.SetMode(os.ModeSymlink | 0o777)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tarOf(t testing.TB, gz bool, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w = &buf
	var zw *gzip.Writer
	tw := tar.NewWriter(w)
	if gz {
		zw = gzip.NewWriter(w)
		tw = tar.NewWriter(zw)
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if e.link {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.body, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if !e.link {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestReadArchiveLayouts(t *testing.T) {
	cases := map[string][]byte{
		"zip at root":   zipOf(t, entry{name: "SKILL.md", body: goodMD}, entry{name: "scripts/forms.py", body: "print(1)"}),
		"zip top dir":   zipOf(t, entry{name: "pdf/"}, entry{name: "pdf/SKILL.md", body: goodMD}, entry{name: "pdf/scripts/forms.py", body: "print(1)"}, entry{name: "__MACOSX/._x", body: "junk"}),
		"tar top dir":   tarOf(t, false, entry{name: "pdf/SKILL.md", body: goodMD}, entry{name: "pdf/scripts/forms.py", body: "print(1)"}),
		"tar.gz ./root": tarOf(t, true, entry{name: "./SKILL.md", body: goodMD}, entry{name: "./scripts/forms.py", body: "print(1)"}),
	}
	for what, data := range cases {
		sk, err := skills.ReadArchive(data, skills.Limits{})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if sk.Name != "pdf-forms" || sk.Source != store.SkillUploaded || sk.FileCount != 1 || sk.Files[0].Path != "scripts/forms.py" ||
			string(sk.Files[0].Content) != "print(1)" || sk.Size != int64(len(goodMD)+8) {
			t.Fatalf("%s: %+v", what, sk)
		}
	}
}

func TestReadArchiveHostile(t *testing.T) {
	md := entry{name: "SKILL.md", body: goodMD}
	big := strings.Repeat("a", 3<<20)
	cases := map[string]struct {
		data []byte
		want error
	}{
		"dotdot zip":        {zipOf(t, md, entry{name: "../evil", body: "x"}), skills.ErrInvalid},
		"dotdot inner":      {zipOf(t, md, entry{name: "a/../../evil", body: "x"}), skills.ErrInvalid},
		"absolute zip":      {zipOf(t, md, entry{name: "/etc/passwd", body: "x"}), skills.ErrInvalid},
		"backslash":         {zipOf(t, md, entry{name: "..\\evil", body: "x"}), skills.ErrInvalid},
		"drive":             {zipOf(t, md, entry{name: "C:/evil", body: "x"}), skills.ErrInvalid},
		"symlink zip":       {zipOf(t, md, entry{name: "link", body: "/etc/passwd", link: true}), skills.ErrInvalid},
		"symlink tar":       {tarOf(t, false, md, entry{name: "link", body: "/etc/passwd", link: true}), skills.ErrInvalid},
		"dotdot tar.gz":     {tarOf(t, true, md, entry{name: "../evil", body: "x"}), skills.ErrInvalid},
		"duplicate":         {tarOf(t, false, md, entry{name: "a", body: "x"}, entry{name: "./a", body: "y"}), skills.ErrInvalid},
		"no SKILL.md":       {zipOf(t, entry{name: "README.md", body: "x"}), skills.ErrInvalid},
		"two top folders":   {zipOf(t, entry{name: "a/SKILL.md", body: goodMD}, entry{name: "b/x", body: "x"}), skills.ErrInvalid},
		"not an archive":    {[]byte("hello, this is not an archive"), skills.ErrInvalid},
		"truncated zip":     {zipOf(t, md)[:40], skills.ErrInvalid},
		"bad gzip":          {[]byte{0x1f, 0x8b, 0, 0}, skills.ErrInvalid},
		"file over cap":     {zipOf(t, md, entry{name: "big", body: big}), skills.ErrTooLarge},
		"total over cap":    {zipOf(t, md, entry{name: "b1", body: big[:2<<20]}, entry{name: "b2", body: big[:2<<20]}, entry{name: "b3", body: big[:2<<20]}), skills.ErrTooLarge},
		"gzip bomb":         {tarOf(t, true, md, entry{name: "zeros", body: strings.Repeat("\x00", 8<<20)}), skills.ErrTooLarge},
		"bad front matter":  {zipOf(t, entry{name: "SKILL.md", body: "---\nname: Bad\ndescription: d\n---\n"}), skills.ErrInvalid},
		"nul in entry name": {zipOf(t, md, entry{name: "a\x00b", body: "x"}), skills.ErrInvalid},
	}
	many := []entry{md}
	for i := range skills.DefaultMaxFiles + 1 {
		many = append(many, entry{name: "f/" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "-" + itoa(i), body: "x"})
	}
	cases["too many files"] = struct {
		data []byte
		want error
	}{zipOf(t, many...), skills.ErrTooLarge}
	for what, c := range cases {
		if _, err := skills.ReadArchive(c.data, skills.Limits{}); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", what, err, c.want)
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	write := func(p, body string) {
		t.Helper()
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("pdf/SKILL.md", goodMD)
	write("pdf/ref/forms.md", "forms")
	write("other/SKILL.md", "---\nname: other\ndescription: Other.\n---\nbody")
	write("not-a-skill/README.md", "x")
	list, err := skills.LoadDir(dir, skills.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "other" || list[1].Name != "pdf-forms" || list[1].Source != store.SkillConfig ||
		list[1].FileCount != 1 || list[1].Files[0].Path != "ref/forms.md" {
		t.Fatalf("loaded %+v", list)
	}
	// A link inside a skill folder is refused, not followed.
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "pdf", "passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := skills.LoadDir(dir, skills.Limits{}); !errors.Is(err, skills.ErrInvalid) {
		t.Fatalf("symlink in folder: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "pdf", "passwd")); err != nil {
		t.Fatal(err)
	}
	write("dup/SKILL.md", goodMD)
	if _, err := skills.LoadDir(dir, skills.Limits{}); err == nil || !strings.Contains(err.Error(), "both name") {
		t.Fatalf("duplicate names: %v", err)
	}
}

func TestMergeGrants(t *testing.T) {
	got := skills.MergeGrants([]string{"a", "b"}, []string{"b", "c"})
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("merged %v", got)
	}
}
