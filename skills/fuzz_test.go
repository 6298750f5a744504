package skills_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/openintern/openintern/skills"
)

// FuzzReadArchive: whatever bytes are uploaded, reading them ends in a skill
// that keeps the rules (valid name, files within the caps, paths inside the
// folder) or in ErrInvalid/ErrTooLarge, never a panic or another error.
func FuzzReadArchive(f *testing.F) {
	f.Add(zipOf(f, entry{name: "SKILL.md", body: goodMD}, entry{name: "a/b.txt", body: "x"}))
	f.Add(zipOf(f, entry{name: "top/SKILL.md", body: goodMD}))
	f.Add(zipOf(f, entry{name: "SKILL.md", body: goodMD}, entry{name: "../x", body: "x"}))
	f.Add(tarOf(f, false, entry{name: "SKILL.md", body: goodMD}, entry{name: "l", body: "/etc", link: true}))
	f.Add(tarOf(f, true, entry{name: "s/SKILL.md", body: goodMD}, entry{name: "s/x", body: "y"}))
	f.Add([]byte("PK\x03\x04garbage"))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0})
	lim := skills.Limits{MaxBytes: 64 << 10, MaxFileBytes: 16 << 10, MaxFiles: 16}
	f.Fuzz(func(t *testing.T, data []byte) {
		sk, err := skills.ReadArchive(data, lim)
		if err != nil {
			if !errors.Is(err, skills.ErrInvalid) && !errors.Is(err, skills.ErrTooLarge) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !skills.ValidName(sk.Name) || sk.Description == "" || sk.Size > lim.MaxBytes || len(sk.Files) > lim.MaxFiles {
			t.Fatalf("skill breaks the rules: %+v", sk)
		}
		for _, file := range sk.Files {
			if strings.HasPrefix(file.Path, "/") || strings.Contains("/"+file.Path+"/", "/../") || !utf8.ValidString(file.Path) || int64(len(file.Content)) > lim.MaxFileBytes {
				t.Fatalf("file breaks the rules: %q (%d bytes)", file.Path, len(file.Content))
			}
		}
	})
}

// FuzzParseSkillMD: any SKILL.md parses into a valid front matter or ErrInvalid.
func FuzzParseSkillMD(f *testing.F) {
	f.Add([]byte(goodMD))
	f.Add([]byte("---\nname: a\ndescription: d\nallowed-tools: [a, b]\n---\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("---\nname: &a [*a]\n---\n"))
	f.Add([]byte("---\r\nname: a\r\ndescription: |\r\n  multi\r\n---"))
	f.Fuzz(func(t *testing.T, data []byte) {
		meta, _, err := skills.ParseSkillMD(data)
		if err != nil {
			if !errors.Is(err, skills.ErrInvalid) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !skills.ValidName(meta.Name) || meta.Description == "" || utf8.RuneCountInString(meta.Description) > skills.MaxDescriptionLen {
			t.Fatalf("meta breaks the rules: %+v", meta)
		}
	})
}
