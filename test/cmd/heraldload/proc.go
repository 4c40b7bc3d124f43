package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat; 100 on
// every Linux architecture Herald runs on.
const clockTicks = 100

// procSample is a process's CPU time and resident memory at one moment.
type procSample struct {
	cpuSeconds float64
	rssBytes   int64
}

// sampleProc reads /proc/<pid>/stat and /proc/<pid>/status.
func sampleProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, err
	}
	// The command name may hold spaces; fields after its closing parenthesis are fixed.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return procSample{}, fmt.Errorf("pid %d: short stat", pid)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return procSample{}, fmt.Errorf("pid %d: bad stat", pid)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, err
	}
	var rss int64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			rss = kb * 1024
		}
	}
	return procSample{cpuSeconds: (utime + stime) / clockTicks, rssBytes: rss}, nil
}

// sampleAll samples every named process, with its children (Postgres's backends
// are the postmaster's), and the load tool itself as "load tool"; processes that
// vanished are left out.
func sampleAll(pids map[string]int) map[string]procSample {
	children := childrenOf()
	out := map[string]procSample{}
	for name, pid := range pids {
		s, err := sampleProc(pid)
		if err != nil {
			continue
		}
		for _, c := range children[pid] {
			if cs, err := sampleProc(c); err == nil {
				s.cpuSeconds += cs.cpuSeconds
				s.rssBytes += cs.rssBytes
			}
		}
		out[name] = s
	}
	if s, err := sampleProc(os.Getpid()); err == nil {
		out[loadToolName] = s
	}
	return out
}

// loadToolName names the load tool's own row in the cost report.
const loadToolName = "load tool"

// childrenOf maps each process id to its children's, read from /proc/<pid>/stat.
func childrenOf() map[int][]int {
	out := map[int][]int{}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			out[ppid] = append(out[ppid], pid)
		}
	}
	return out
}
