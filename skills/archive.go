package skills

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/openintern/openintern/store"
)

// SkillFileName is the file a skill's folder must hold.
const SkillFileName = "SKILL.md"

// Default caps of a skill.
const (
	DefaultMaxBytes     = 5 << 20 // all its files, uncompressed
	DefaultMaxFileBytes = 2 << 20 // one file
	DefaultMaxFiles     = 200
	maxPathLen          = 512
)

// Limits bound one skill. Zero fields take the defaults; MaxFileBytes is
// never above MaxBytes.
type Limits struct {
	MaxBytes     int64
	MaxFileBytes int64
	MaxFiles     int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultMaxFileBytes
	}
	l.MaxFileBytes = min(l.MaxFileBytes, l.MaxBytes)
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	return l
}

// maxEntries bounds the entries of an archive looked at, directories and
// skipped ones included, so an archive of a million empty entries is cheap
// to refuse.
func (l Limits) maxEntries() int { return 4*l.MaxFiles + 16 }

// collector gathers an archive's files under the caps.
type collector struct {
	lim     Limits
	files   map[string][]byte
	order   []string
	total   int64
	entries int
}

func newCollector(lim Limits) *collector {
	return &collector{lim: lim.withDefaults(), files: map[string][]byte{}}
}

// entry counts one entry of the archive against the entry cap.
func (c *collector) entry() error {
	c.entries++
	if c.entries > c.lim.maxEntries() {
		return fmt.Errorf("%w: the archive has more than %d entries", ErrTooLarge, c.lim.maxEntries())
	}
	return nil
}

// cleanPath checks an entry's name and returns it relative to the archive's
// root; skip is true for entries that are not part of a skill (macOS's
// resource forks).
func cleanPath(name string) (p string, skip bool, err error) {
	switch {
	case name == "":
		return "", false, invalid("an entry has no name")
	case len(name) > maxPathLen:
		return "", false, invalid("an entry's name is longer than %d bytes", maxPathLen)
	case !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\\"):
		return "", false, invalid("entry %q: names must be UTF-8 with / separators", clip(name))
	case strings.HasPrefix(name, "/") || (len(name) > 1 && name[1] == ':'):
		return "", false, invalid("entry %q has an absolute path", clip(name))
	}
	for _, part := range strings.Split(strings.TrimSuffix(name, "/"), "/") {
		if part == ".." {
			return "", false, invalid("entry %q leaves the skill's folder", clip(name))
		}
	}
	p = path.Clean(strings.TrimPrefix(name, "./"))
	if p == "." {
		return "", true, nil
	}
	if p == "__MACOSX" || strings.HasPrefix(p, "__MACOSX/") || path.Base(p) == ".DS_Store" {
		return "", true, nil
	}
	return p, false, nil
}

// add reads one regular file of the archive.
func (c *collector) add(name string, r io.Reader) error {
	p, skip, err := cleanPath(name)
	if err != nil || skip {
		return err
	}
	if _, dup := c.files[p]; dup {
		return invalid("entry %q appears twice", clip(p))
	}
	if len(c.files) >= c.lim.MaxFiles {
		return fmt.Errorf("%w: more than %d files", ErrTooLarge, c.lim.MaxFiles)
	}
	data, err := io.ReadAll(io.LimitReader(r, c.lim.MaxFileBytes+1))
	if err != nil {
		return invalid("entry %q cannot be read: %s", clip(p), firstLine(err.Error()))
	}
	if int64(len(data)) > c.lim.MaxFileBytes {
		return fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, clip(p), c.lim.MaxFileBytes)
	}
	c.total += int64(len(data))
	if c.total > c.lim.MaxBytes {
		return fmt.Errorf("%w: its files hold more than %d bytes", ErrTooLarge, c.lim.MaxBytes)
	}
	c.files[p] = data
	c.order = append(c.order, p)
	return nil
}

// skill finds SKILL.md (at the root, or in the one top folder that holds
// everything) and builds the skill.
func (c *collector) skill(source string) (store.Skill, error) {
	root := ""
	if _, ok := c.files[SkillFileName]; !ok {
		top := ""
		for _, p := range c.order {
			first, _, nested := strings.Cut(p, "/")
			if !nested || (top != "" && first != top) {
				return store.Skill{}, invalid("%s is missing: put it at the root of the archive or in its one top folder", SkillFileName)
			}
			top = first
		}
		if _, ok := c.files[top+"/"+SkillFileName]; top == "" || !ok {
			return store.Skill{}, invalid("%s is missing: put it at the root of the archive or in its one top folder", SkillFileName)
		}
		root = top + "/"
	}
	meta, body, err := ParseSkillMD(c.files[root+SkillFileName])
	if err != nil {
		return store.Skill{}, err
	}
	sk := store.Skill{Name: meta.Name, Description: meta.Description, Body: body, AllowedTools: meta.AllowedTools,
		Source: source, Size: c.total, Files: []store.SkillFile{}}
	for _, p := range c.order {
		rel := strings.TrimPrefix(p, root)
		if rel == SkillFileName {
			continue
		}
		data := c.files[p]
		sk.Files = append(sk.Files, store.SkillFile{Path: rel, Size: int64(len(data)), Content: data})
	}
	sk.FileCount = len(sk.Files)
	return sk, nil
}

// ReadArchive reads an uploaded skill: a zip, a tar or a gzipped tar
// (told apart by their first bytes), holding SKILL.md at its root or in its
// one top folder. Links, devices, absolute paths and paths with ".." are
// refused, as is anything over lim; nothing is written anywhere.
func ReadArchive(data []byte, lim Limits) (store.Skill, error) {
	c := newCollector(lim)
	var err error
	switch {
	case bytes.HasPrefix(data, []byte("PK\x03\x04")) || bytes.HasPrefix(data, []byte("PK\x05\x06")):
		err = c.readZip(data)
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		var zr *gzip.Reader
		zr, err = gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return store.Skill{}, invalid("the gzip stream is corrupt: %s", firstLine(err.Error()))
		}
		// Bound what the stream may inflate to: a gzip bomb stops here, not
		// when memory runs out. Headers and padding are at most 1 KiB an entry.
		budget := c.lim.MaxBytes + int64(c.lim.maxEntries())*1024 + 1024
		lr := &io.LimitedReader{R: zr, N: budget}
		err = c.readTar(lr)
		if err == nil && lr.N <= 0 {
			err = fmt.Errorf("%w: the archive inflates to more than %d bytes", ErrTooLarge, budget)
		}
		if lr.N <= 0 && errors.Is(err, ErrInvalid) {
			err = fmt.Errorf("%w: the archive inflates to more than %d bytes", ErrTooLarge, budget)
		}
	case len(data) >= 262 && string(data[257:262]) == "ustar":
		err = c.readTar(bytes.NewReader(data))
	default:
		return store.Skill{}, invalid("the upload is not a zip, tar or tar.gz archive")
	}
	if err != nil {
		return store.Skill{}, err
	}
	return c.skill(store.SkillUploaded)
}

func (c *collector) readZip(data []byte) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return invalid("the zip archive is corrupt: %s", firstLine(err.Error()))
	}
	if len(zr.File) > c.lim.maxEntries() {
		return fmt.Errorf("%w: the archive has more than %d entries", ErrTooLarge, c.lim.maxEntries())
	}
	for _, f := range zr.File {
		if err := c.entry(); err != nil {
			return err
		}
		mode := f.Mode()
		switch {
		case mode.IsDir():
			if _, _, err := cleanPath(f.Name); err != nil {
				return err
			}
			continue
		case mode&fs.ModeSymlink != 0:
			return invalid("entry %q is a symbolic link; skills hold plain files only", clip(f.Name))
		case !mode.IsRegular():
			return invalid("entry %q is not a plain file", clip(f.Name))
		}
		if err := c.addZip(f); err != nil {
			return err
		}
	}
	return nil
}

func (c *collector) addZip(f *zip.File) error {
	rc, err := f.Open()
	if err != nil {
		return invalid("entry %q cannot be read: %s", clip(f.Name), firstLine(err.Error()))
	}
	defer func() { _ = rc.Close() }()
	return c.add(f.Name, rc)
}

func (c *collector) readTar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return invalid("the tar archive is corrupt: %s", firstLine(err.Error()))
		}
		if err := c.entry(); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if _, _, err := cleanPath(h.Name); err != nil {
				return err
			}
			continue
		case tar.TypeXGlobalHeader:
			continue
		case tar.TypeSymlink, tar.TypeLink:
			return invalid("entry %q is a link; skills hold plain files only", clip(h.Name))
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // TypeRegA is what old tars write for a file
		default:
			return invalid("entry %q is not a plain file", clip(h.Name))
		}
		if err := c.add(h.Name, tr); err != nil {
			return err
		}
	}
}

// ReadFS reads a skill from a folder (a skills folder's subfolder): every
// regular file under it, under the same caps as an upload. Links are
// refused, not followed, so a skill cannot expose files outside its folder.
func ReadFS(fsys fs.FS, lim Limits) (store.Skill, error) {
	c := newCollector(lim)
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := c.entry(); err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			return invalid("%s is a symbolic link; skills hold plain files only", clip(p))
		case !d.Type().IsRegular():
			return invalid("%s is not a plain file", clip(p))
		}
		f, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		return c.add(p, f)
	})
	if err != nil {
		return store.Skill{}, err
	}
	return c.skill(store.SkillConfig)
}
