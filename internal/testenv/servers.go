package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// Private servers are for tests that stop or restart their database or Redis:
// the shared ones (PostgresURL, RedisURL) serve other tests at the same time.

// serverStartTimeout bounds starting or stopping a private server.
const serverStartTimeout = 60 * time.Second

// FreePort returns a TCP port of 127.0.0.1 that nothing listened on a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// RedisServer is a redis-server of the test's own on a free port, without
// persistence, stopped when the test ends.
type RedisServer struct {
	t    testing.TB
	Port int

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartRedis starts a private redis-server (from PATH) and waits until it
// answers; a missing binary or a server that does not come up fails the test.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("testenv: redis-server is not installed: %v", err)
	}
	r := &RedisServer{t: t, Port: FreePort(t)}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// URL is the server's redis:// URL.
func (r *RedisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port) }

// Start starts the server again after Stop, on the same port.
func (r *RedisServer) Start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("testenv: start redis-server: %v", err)
	}
	r.cmd = cmd
	opts, _ := redis.ParseURL(r.URL())
	client := redis.NewClient(opts)
	defer client.Close()
	deadline := time.Now().Add(serverStartTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := client.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("testenv: redis-server on port %d did not answer within %s: %v\n%s", r.Port, serverStartTimeout, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server and waits for it to end; Start brings it back.
func (r *RedisServer) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// postgresBin is where the PostgreSQL server binaries (initdb, pg_ctl) are:
// OPENINTERN_TEST_PG_BIN, else the newest /usr/lib/postgresql/<version>/bin
// that has them (Debian's layout; bookworm ships 15).
func postgresBin() string {
	if bin := os.Getenv("OPENINTERN_TEST_PG_BIN"); bin != "" {
		return bin
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestVersion := "/usr/lib/postgresql/15/bin", -1
	for _, d := range dirs {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if _, serr := os.Stat(filepath.Join(d, "initdb")); err == nil && serr == nil && v > bestVersion {
			best, bestVersion = d, v
		}
	}
	return best
}

// PostgresServer is a PostgreSQL cluster of the test's own (initdb into a
// temporary directory, on a free port, trust authentication for user
// postgres), stopped and removed when the test ends.
type PostgresServer struct {
	t       testing.TB
	Port    int
	bin     string
	dataDir string
	logFile string
	asUser  []string // runuser prefix when the test runs as root
}

// StartPostgres initdb's and starts a private PostgreSQL cluster. initdb
// refuses to run as root, so as root the binaries run as the OS user
// postgres on a data directory it owns. A missing binary or a cluster that
// does not come up fails the test.
func StartPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	bin := postgresBin()
	if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
		t.Fatalf("testenv: PostgreSQL server binaries not found in %s (set OPENINTERN_TEST_PG_BIN): %v", bin, err)
	}
	root := t.TempDir()
	p := &PostgresServer{t: t, Port: FreePort(t), bin: bin, dataDir: filepath.Join(root, "pgdata"), logFile: filepath.Join(root, "postgres.log")}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("testenv: running as root, and there is no OS user postgres to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		// The temporary directories are root's and 0700: let postgres through
		// to its own directory and log file.
		for dir := root; dir != filepath.Clean(os.TempDir()) && dir != "/"; dir = filepath.Dir(dir) {
			if err := os.Chmod(dir, 0o711); err != nil {
				t.Fatalf("testenv: chmod %s: %v", dir, err)
			}
		}
		if err := os.Mkdir(p.dataDir, 0o700); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if err := os.WriteFile(p.logFile, nil, 0o600); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		for _, f := range []string{p.dataDir, p.logFile} {
			if err := os.Chown(f, uid, gid); err != nil {
				t.Fatalf("testenv: chown %s: %v", f, err)
			}
		}
		p.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	p.run("initdb", "-D", p.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	p.Start()
	t.Cleanup(func() {
		// Already stopped by the test is fine.
		_, _ = p.exec("pg_ctl", "-D", p.dataDir, "stop", "-m", "immediate")
	})
	return p
}

// URL is a postgres:// URL of the cluster's database postgres.
func (p *PostgresServer) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.Port)
}

// Start starts the cluster (again) and waits until it accepts connections.
func (p *PostgresServer) Start() {
	p.t.Helper()
	// No Unix socket: its path would be too long under a test's temp dir.
	p.pgctl("start", "-w", "-l", p.logFile, "-o",
		fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off", p.Port))
	ctx, cancel := context.WithTimeout(context.Background(), serverStartTimeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, p.URL())
		if err == nil {
			_ = conn.Close(ctx)
			return
		}
		if ctx.Err() != nil {
			p.t.Fatalf("testenv: private PostgreSQL on port %d does not accept connections: %v\n%s", p.Port, err, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop shuts the cluster down (fast: sessions are ended, as in a restart).
func (p *PostgresServer) Stop() {
	p.t.Helper()
	p.pgctl("stop", "-w", "-m", "fast")
}

// Log returns the server's log so far.
func (p *PostgresServer) Log() string {
	b, _ := os.ReadFile(p.logFile)
	return string(b)
}

func (p *PostgresServer) pgctl(args ...string) {
	p.t.Helper()
	p.run("pg_ctl", append([]string{"-D", p.dataDir, "-t", strconv.Itoa(int(serverStartTimeout.Seconds()))}, args...)...)
}

func (p *PostgresServer) run(name string, args ...string) {
	p.t.Helper()
	if out, err := p.exec(name, args...); err != nil {
		p.t.Fatalf("testenv: %s %v: %v\n%s\n%s", name, args, err, out, p.Log())
	}
}

func (p *PostgresServer) exec(name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, p.asUser...), filepath.Join(p.bin, name)), args...)
	ctx, cancel := context.WithTimeout(context.Background(), serverStartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = "/" // runuser's user may not enter the test's working directory
	return cmd.CombinedOutput()
}
