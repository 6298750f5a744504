package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The bench reads CPU time from /proc (Linux only; elsewhere the CPU figures
// are left out of the report). Clock ticks are USER_HZ, 100 on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

// procStat is what the bench reads from /proc/<pid>/stat.
type procStat struct {
	comm string
	ppid int
	cpu  time.Duration // utime + stime
}

func readProcStat(pid int) (procStat, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	// comm is in parentheses and may hold spaces or parentheses itself.
	s := string(raw)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[end+1:])
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return procStat{comm: s[open+1 : end], ppid: ppid, cpu: time.Duration(utime+stime) * clockTick}, nil
}

// allPIDs lists the processes of the machine.
func allPIDs() []int {
	entries, _ := os.ReadDir("/proc")
	pids := make([]int, 0, len(entries))
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// listenerPID finds the process listening on a local TCP port, through the
// socket's inode in /proc/net/tcp{,6} and the process's open files. It
// needs permission to read that process's /proc/<pid>/fd (same user or root).
func listenerPID(port int) (int, bool) {
	want := fmt.Sprintf(":%04X", port)
	inodes := map[string]bool{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			if len(fields) < 10 || fields[3] != "0A" || !strings.HasSuffix(fields[1], want) {
				continue
			}
			inodes["socket:["+fields[9]+"]"] = true
		}
		_ = f.Close()
	}
	if len(inodes) == 0 {
		return 0, false
	}
	for _, pid := range allPIDs() {
		dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && inodes[target] {
				return pid, true
			}
		}
	}
	return 0, false
}

// cpuMeter adds up the CPU time a changing set of processes spends, such as
// a PostgreSQL server and its backends, which come and go: every sample adds
// each process's growth since it was last seen (a process born after the
// start counts whole). What a process spends between its last sample and its
// exit is lost, so the meter samples every second.
type cpuMeter struct {
	pids  func() []int
	last  map[int]time.Duration
	total time.Duration
}

func newCPUMeter(pids func() []int) *cpuMeter {
	m := &cpuMeter{pids: pids, last: map[int]time.Duration{}}
	for _, pid := range pids() {
		if st, err := readProcStat(pid); err == nil {
			m.last[pid] = st.cpu
		}
	}
	return m
}

func (m *cpuMeter) sample() {
	seen := map[int]time.Duration{}
	for _, pid := range m.pids() {
		st, err := readProcStat(pid)
		if err != nil {
			continue
		}
		seen[pid] = st.cpu
		if prev, known := m.last[pid]; known && st.cpu >= prev {
			m.total += st.cpu - prev
		} else {
			m.total += st.cpu // born since the last sample (or a reused pid)
		}
	}
	m.last = seen
}

// processTree is pid and its direct children (a PostgreSQL postmaster and
// its backends and workers).
func processTree(pid int) func() []int {
	return func() []int {
		out := []int{pid}
		for _, p := range allPIDs() {
			if st, err := readProcStat(p); err == nil && st.ppid == pid {
				out = append(out, p)
			}
		}
		return out
	}
}

// selfCPU is this process's own CPU time (the bench client and, with
// --model local, the model).
func selfCPU() time.Duration {
	st, err := readProcStat(os.Getpid())
	if err != nil {
		return 0
	}
	return st.cpu
}
