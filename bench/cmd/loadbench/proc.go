package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// loopback is the only host the harness sends traffic to.
const loopback = "127.0.0.1"

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports (see proc(5)).
const clockTicks = 100

// server is one started server process.
type server struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	// baseURL is http://127.0.0.1:PORT of the HTTP listener.
	baseURL string
	// grpcAddr is 127.0.0.1:PORT of the gRPC listener, if any.
	grpcAddr string
	// adminURL is http://127.0.0.1:PORT of the admin listener, if any; it
	// then serves /metrics and the profiles.
	adminURL string
	done     chan struct{}
	waitErr  error
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", loopback+":0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts bin with args in dir, its output going to a log file
// in dir, and waits until GET baseURL+readyPath responds 200.
func startServer(ctx context.Context, name, dir, bin string, args, env []string, baseURL, readyPath string) (*server, error) {
	client := &http.Client{Timeout: time.Second}
	ready := func() error {
		resp, err := client.Get(baseURL + readyPath)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s responded %d", readyPath, resp.StatusCode)
		}
		return nil
	}
	s, err := startProcess(ctx, name, dir, bin, args, env, ready)
	if err != nil {
		return nil, err
	}
	s.baseURL = baseURL
	return s, nil
}

// startProcess starts bin with args in dir, its output going to a log
// file in dir, and polls ready until it returns nil.
func startProcess(ctx context.Context, name, dir, bin string, args, env []string, ready func() error) (*server, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		logFile.Close()
		close(s.done)
	}()
	if err := s.waitReady(ctx, ready, 60*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s did not become ready: %w (log: %s)", name, err, tail(logPath, 5))
	}
	return s, nil
}

// waitReady polls ready every 100ms until it returns nil.
func (s *server) waitReady(ctx context.Context, ready func() error, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("process exited: %v", s.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s: %w", limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pid returns the server's process id.
func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM, waits up to 15s for a graceful exit (the PDP flushes
// its audit log then) and kills the process after that.
func (s *server) stop() error {
	select {
	case <-s.done:
		return s.waitErr
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("%s did not stop within 15s after SIGTERM and was killed", s.name)
	}
	var exitErr *exec.ExitError
	if errors.As(s.waitErr, &exitErr) && exitErr.ExitCode() == -1 {
		// Killed by the signal itself: OPA exits this way on SIGTERM.
		return nil
	}
	return s.waitErr
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// cpuTime returns the user plus system CPU time of a process, from fields
// 14 and 15 of /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces, so fields are counted
	// after its closing parenthesis, where field 3 starts.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields, want at least 15", pid, len(fields)+2)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// statusKB returns a "kB" field of /proc/PID/status, in bytes.
func statusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status %s: %w", pid, field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s field", pid, field)
}

// resetPeakRSS sets VmHWM back to the current RSS (proc(5), clear_refs
// value 5), so the next reading is the peak of one run only.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// usage is a server's resource use over one run.
type usage struct {
	cpu time.Duration
	// peakRSS is VmHWM after the run, in bytes. When VmHWM cannot be reset
	// it is the maximum VmRSS sampled every 100ms instead.
	peakRSS int64
	// peakFromHWM is true when peakRSS is VmHWM.
	peakFromHWM bool
}

// usageMeter measures a process's CPU time and peak RSS over one run.
type usageMeter struct {
	pid       int
	startCPU  time.Duration
	hwmReset  bool
	stopOnce  sync.Once
	stopped   chan struct{}
	sampled   chan int64
	sampleErr error
}

// startUsage starts measuring pid.
func startUsage(pid int) (*usageMeter, error) {
	m := &usageMeter{pid: pid, stopped: make(chan struct{}), sampled: make(chan int64, 1)}
	m.hwmReset = resetPeakRSS(pid) == nil
	cpu, err := cpuTime(pid)
	if err != nil {
		return nil, err
	}
	m.startCPU = cpu
	go m.sample()
	return m, nil
}

// sample records the largest VmRSS seen until stop.
func (m *usageMeter) sample() {
	var peak int64
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for {
		if rss, err := statusKB(m.pid, "VmRSS"); err == nil && rss > peak {
			peak = rss
		}
		select {
		case <-m.stopped:
			m.sampled <- peak
			return
		case <-ticker.C:
		}
	}
}

// stop ends the measurement and returns the usage since startUsage.
func (m *usageMeter) stop() (usage, error) {
	m.stopOnce.Do(func() { close(m.stopped) })
	sampledPeak := <-m.sampled
	cpu, err := cpuTime(m.pid)
	if err != nil {
		return usage{}, err
	}
	u := usage{cpu: cpu - m.startCPU, peakRSS: sampledPeak}
	if m.hwmReset {
		if hwm, err := statusKB(m.pid, "VmHWM"); err == nil {
			u.peakRSS, u.peakFromHWM = hwm, true
		}
	}
	return u, nil
}

// selfCPU returns this process's CPU time, which is the load generator's.
func selfCPU() time.Duration {
	d, err := cpuTime(os.Getpid())
	if err != nil {
		return 0
	}
	return d
}
