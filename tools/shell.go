package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/openintern/openintern/llm"
)

// Defaults of the shell tool.
const (
	DefaultShellTimeout   = 50 * time.Second // under the registry's 60 s per call
	DefaultShellCPUSecs   = 30
	DefaultShellMemoryMB  = 1024
	DefaultShellMaxProcs  = 128
	DefaultShellFileMB    = 256
	DefaultShellMaxOutput = 32 << 10
	// ShellWorkdir is where the workspace appears inside the sandbox.
	ShellWorkdir = "/workspace"
)

// ShellConfig configures the shell tool.
type ShellConfig struct {
	Workspace      string        // bound read-write at ShellWorkdir
	Timeout        time.Duration // wall time of one command
	CPUSeconds     int           // RLIMIT_CPU of every process in the sandbox
	MemoryMB       int           // RLIMIT_AS (address space) of every process
	MaxProcs       int           // RLIMIT_NPROC (see the note on NewShell)
	FileMB         int           // RLIMIT_FSIZE: the largest file a command may write
	MaxOutputBytes int           // stdout and stderr are each kept up to this
	Bwrap          string        // path of bwrap; "" looks it up on PATH
	// PidsCgroup is a pids cgroup folder (v1 /sys/fs/cgroup/pids, or a
	// delegated v2 one) in which each command gets a child cgroup capped at
	// MaxProcs. "" uses /sys/fs/cgroup/pids when it is writable; "off" never.
	PidsCgroup string
}

// Shell is the built-in shell tool: bash -c in a bubblewrap sandbox with no
// network (a fresh network namespace with nothing but its own loopback), a
// read-only system, the workspace as the only writable folder besides a
// private /tmp, no capabilities, and CPU, memory, process, file-size,
// output and wall-time limits.
type Shell struct {
	cfg   ShellConfig
	bwrap string
	pids  string // the pids cgroup parent, "" when none is used
}

var _ Tool = (*Shell)(nil)

// ErrNoBwrap is returned by NewShell when bubblewrap cannot be found or run.
var ErrNoBwrap = errors.New("bubblewrap (bwrap) is required for the shell tool")

// NewShell returns a shell tool after checking that bwrap exists and can
// build the sandbox on this machine (it needs user namespaces), so a daemon
// with the shell on fails at start-up rather than at the first call.
//
// RLIMIT_NPROC does not bind a daemon running as root (the kernel exempts
// root's processes), so as root the process limit is a pids cgroup when one
// can be made; without one it rests only on the sandbox's pid namespace
// being torn down at the time limit (ProcessLimited reports which).
func NewShell(ctx context.Context, cfg ShellConfig) (*Shell, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultShellTimeout
	}
	if cfg.CPUSeconds <= 0 {
		cfg.CPUSeconds = DefaultShellCPUSecs
	}
	if cfg.MemoryMB <= 0 {
		cfg.MemoryMB = DefaultShellMemoryMB
	}
	if cfg.MaxProcs <= 0 {
		cfg.MaxProcs = DefaultShellMaxProcs
	}
	if cfg.FileMB <= 0 {
		cfg.FileMB = DefaultShellFileMB
	}
	if cfg.MaxOutputBytes <= 0 {
		cfg.MaxOutputBytes = DefaultShellMaxOutput
	}
	bwrap := cfg.Bwrap
	if bwrap == "" {
		bwrap = "bwrap"
	}
	path, err := exec.LookPath(bwrap)
	if err != nil {
		return nil, fmt.Errorf("%w: %v (Debian/Ubuntu: apt-get install bubblewrap)", ErrNoBwrap, err)
	}
	s := &Shell{cfg: cfg, bwrap: path}
	switch cfg.PidsCgroup {
	case "off":
	case "":
		if probePidsCgroup(defaultPidsCgroup) == nil {
			s.pids = defaultPidsCgroup
		}
	default:
		if err := probePidsCgroup(cfg.PidsCgroup); err != nil {
			return nil, fmt.Errorf("shell: pids cgroup %s: %w", cfg.PidsCgroup, err)
		}
		s.pids = cfg.PidsCgroup
	}
	// The probe runs in the real sandbox, with the workspace bound, so every
	// reason it could fail (no user namespaces, a missing workspace) shows now.
	if err := os.MkdirAll(cfg.Workspace, 0o755); err != nil {
		return nil, fmt.Errorf("shell: workspace: %w", err)
	}
	probeCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(probeCtx, path, s.sandboxArgs("true")...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%w: the sandbox does not start here (are unprivileged user namespaces enabled?): %v: %s",
			ErrNoBwrap, err, strings.TrimSpace(string(out)))
	}
	return s, nil
}

const defaultPidsCgroup = "/sys/fs/cgroup/pids"

// probePidsCgroup checks a child cgroup with a pids limit can be made under parent.
func probePidsCgroup(parent string) error {
	dir, err := os.MkdirTemp(parent, "openintern-shell-probe-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	return os.WriteFile(filepath.Join(dir, "pids.max"), []byte("1"), 0o644)
}

// ProcessLimited reports whether the process limit binds: a pids cgroup is
// in use, or the daemon is not root (RLIMIT_NPROC applies).
func (s *Shell) ProcessLimited() bool { return s.pids != "" || os.Geteuid() != 0 }

// sandboxArgs are bwrap's arguments to run command under the limits.
func (s *Shell) sandboxArgs(command string) []string {
	ws, _ := filepath.Abs(s.cfg.Workspace)
	args := []string{
		"--unshare-all", // user, pid, network, ipc, uts, cgroup namespaces
		"--die-with-parent",
		"--new-session",
		"--cap-drop", "ALL",
		"--hostname", "sandbox",
		"--clearenv",
		"--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
		"--setenv", "HOME", ShellWorkdir,
		"--setenv", "LANG", "C.UTF-8",
		"--setenv", "TERM", "dumb",
		"--ro-bind", "/usr", "/usr",
	}
	// /bin, /lib... are links into /usr on merged-/usr systems, folders elsewhere.
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		if target, err := os.Readlink(d); err == nil {
			args = append(args, "--symlink", target, d)
		} else if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			args = append(args, "--ro-bind", d, d)
		}
	}
	// Only the parts of /etc programs need to start and name users; not
	// the host's secrets, keys or configuration.
	for _, f := range []string{"/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/ld.so.cache", "/etc/ld.so.conf",
		"/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime", "/etc/os-release", "/etc/debian_version",
		"/etc/bash.bashrc", "/etc/inputrc", "/etc/mime.types", "/etc/magic"} {
		args = append(args, "--ro-bind-try", f, f)
	}
	args = append(args,
		"--proc", "/proc",
		"--dev", "/dev",
		"--tmpfs", "/tmp",
		"--bind", ws, ShellWorkdir,
		"--chdir", ShellWorkdir,
		"--",
		"/bin/bash", "-c",
		// Hard and soft limits both, so the command cannot raise them.
		fmt.Sprintf("ulimit -c 0 -t %d -v %d -u %d -f %d -n 1024 || exit 125; exec /bin/bash -c \"$1\"",
			s.cfg.CPUSeconds, s.cfg.MemoryMB<<10, s.cfg.MaxProcs, s.cfg.FileMB<<10),
		"bash", command,
	)
	return args
}

var shellParams = json.RawMessage(`{
  "type": "object",
  "properties": {
    "command": {"type": "string", "minLength": 1, "maxLength": 65536,
      "description": "A bash command line, run with bash -c in the workspace."},
    "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 3600,
      "description": "Wall-time limit for this command; capped by the operator's limit."}
  },
  "required": ["command"],
  "additionalProperties": false
}`)

// Spec describes shell.
func (s *Shell) Spec() llm.ToolSpec {
	return llm.ToolSpec{
		Name: "shell",
		Description: "Run a bash command in a sandbox and get its exit code, stdout and stderr. The working directory " +
			ShellWorkdir + " is your workspace (the same files read_file and write_file see) and is the only place " +
			"you can write besides a private /tmp that is discarded afterwards; the rest of the system is read-only " +
			"and there is no network. " +
			fmt.Sprintf("Limits: %s wall time, %d s CPU, %d MiB memory per process, %d processes, files up to %d MiB; "+
				"stdout and stderr are each cut after %d KiB. ",
				s.cfg.Timeout, s.cfg.CPUSeconds, s.cfg.MemoryMB, s.cfg.MaxProcs, s.cfg.FileMB, s.cfg.MaxOutputBytes>>10) +
			"Nothing runs in the background after the command returns.",
		Parameters: shellParams,
	}
}

type shellArgs struct {
	Command        string `json:"command"`
	TimeoutSeconds int    `json:"timeout_seconds"`
}

// Run runs the command in the sandbox.
func (s *Shell) Run(ctx context.Context, call Call) (Result, error) {
	var args shellArgs
	if err := json.Unmarshal(call.Args, &args); err != nil {
		return errorResult("invalid arguments: %v", err), nil
	}
	if strings.ContainsRune(args.Command, 0) {
		return errorResult("command contains a NUL byte"), nil
	}
	timeout := s.cfg.Timeout
	if args.TimeoutSeconds > 0 && time.Duration(args.TimeoutSeconds)*time.Second < timeout {
		timeout = time.Duration(args.TimeoutSeconds) * time.Second
	}
	if _, err := os.Stat(s.cfg.Workspace); err != nil {
		return Result{}, fmt.Errorf("shell: workspace: %w", err)
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	name, argv := s.bwrap, s.sandboxArgs(args.Command)
	if s.pids != "" {
		cg, err := os.MkdirTemp(s.pids, "openintern-shell-")
		if err != nil {
			return Result{}, fmt.Errorf("shell: pids cgroup: %w", err)
		}
		defer removeCgroup(cg)
		if err := os.WriteFile(filepath.Join(cg, "pids.max"), []byte(fmt.Sprint(s.cfg.MaxProcs)), 0o644); err != nil {
			return Result{}, fmt.Errorf("shell: pids cgroup: %w", err)
		}
		// The wrapper joins the cgroup and then becomes bwrap, so every
		// process of the sandbox is born inside it.
		argv = append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, cg, s.bwrap}, argv...)
		name = "/bin/sh"
	}
	cmd := exec.CommandContext(runCtx, name, argv...)
	stdout := &cappedBuffer{max: s.cfg.MaxOutputBytes}
	stderr := &cappedBuffer{max: s.cfg.MaxOutputBytes}
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Killing bwrap kills the sandbox's init (--die-with-parent), and with it
	// every process of the sandbox's pid namespace; WaitDelay stops Wait
	// from hanging on a pipe should anything still hold it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second

	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start).Round(time.Millisecond)

	exitCode := -1
	var note string
	var ee *exec.ExitError
	switch {
	case runCtx.Err() != nil && ctx.Err() == nil:
		note = fmt.Sprintf("killed: the command ran longer than %s", timeout)
	case ctx.Err() != nil:
		return Result{}, ctx.Err()
	case errors.As(err, &ee):
		exitCode = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			note = "killed by signal " + ws.Signal().String()
		}
		// bash reports a child killed by a signal as 128+n.
		switch exitCode {
		case 128 + int(syscall.SIGXCPU), 128 + int(syscall.SIGKILL):
			note = fmt.Sprintf("exit code %d: probably stopped by the CPU limit (%d s)", exitCode, s.cfg.CPUSeconds)
		case 128 + int(syscall.SIGXFSZ):
			note = fmt.Sprintf("exit code %d: a file grew past the %d MiB limit", exitCode, s.cfg.FileMB)
		case 125:
			note = "the sandbox could not apply its limits"
		}
	case err != nil:
		return Result{}, fmt.Errorf("shell: run bwrap: %w", err)
	default:
		exitCode = 0
	}

	var b strings.Builder
	fmt.Fprintf(&b, "exit code: %d (%s)\n", exitCode, elapsed)
	if note != "" {
		fmt.Fprintf(&b, "note: %s\n", note)
	}
	budget := max(MaxResultBytes(ctx)-b.Len()-200, 512)
	outText, errText := stdout.String(), stderr.String()
	// Share the result between the two streams, stderr getting at least a quarter.
	errShare := min(len(errText), max(budget/4, budget-len(outText)))
	outShare := budget - errShare
	writeStream(&b, "stdout", outText, stdout.total, outShare)
	writeStream(&b, "stderr", errText, stderr.total, errShare)
	return Result{Content: b.String(), IsError: exitCode != 0}, nil
}

// removeCgroup removes a command's cgroup once its last process is gone;
// the kernel reaps the killed sandbox's processes within moments.
func removeCgroup(dir string) {
	for i := 0; i < 50; i++ {
		if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeStream(b *strings.Builder, name, text string, total int64, budget int) {
	if total == 0 {
		fmt.Fprintf(b, "%s: (empty)\n", name)
		return
	}
	shown := text
	if len(shown) > budget {
		shown = cutUTF8(shown, max(budget, 0))
	}
	shown = strings.ToValidUTF8(shown, "\uFFFD")
	fmt.Fprintf(b, "%s:\n%s", name, shown)
	if !strings.HasSuffix(shown, "\n") {
		b.WriteByte('\n')
	}
	if int64(len(shown)) < total {
		fmt.Fprintf(b, "[%s truncated: showing %d of %d bytes]\n", name, len(shown), total)
	}
}

// cappedBuffer keeps the first max bytes written and counts the rest, so a
// command printing without end costs no memory and never blocks on its pipe.
type cappedBuffer struct {
	mu    sync.Mutex
	max   int
	buf   []byte
	total int64
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += int64(len(p))
	if room := c.max - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *cappedBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}
