// Package redisproc starts real redis-server processes on loopback for
// tests: a single server, a Redis Cluster of several masters, or a master
// watched by a Sentinel. It fails
// the test with the install command when redis-server is missing.
package redisproc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	Addr string
	Port int
	dir  string
	args []string
	cmd  *exec.Cmd
}

// Binary returns the redis-server path, failing t when it is missing.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found on PATH: install it with `apt-get install -y redis-server` (or run `make test`, which does)")
	}
	return path
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs a redis-server without persistence on a free loopback port and
// stops it when the test ends. extra are more redis-server arguments.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), Port: FreePort(t)}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	s.args = append([]string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
	}, extra...)
	s.start()
	t.Cleanup(s.Kill)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.cmd = exec.Command(Binary(s.t), s.args...)
	s.cmd.Dir = s.dir
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	if err := waitPing(s.Addr, 10*time.Second); err != nil {
		s.Kill()
		s.t.Fatalf("redis-server on %s did not start: %v", s.Addr, err)
	}
}

// Kill stops the server with SIGKILL; its in-memory state is lost.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port with empty state.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

// Do sends one command and returns the first reply line.
func (s *Server) Do(args ...string) (string, error) {
	return do(s.Addr, args...)
}

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Nodes []*Server
}

// Addrs returns the addresses of every node.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// StartCluster starts masters redis-server processes in cluster mode and
// joins them with redis-cli --cluster create.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli not found on PATH: install it with `apt-get install -y redis-server`")
	}
	c := &Cluster{}
	for i := 0; i < masters; i++ {
		c.Nodes = append(c.Nodes, Start(t, "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		info, err := c.Nodes[0].Do("CLUSTER", "INFO")
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return c
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("redis cluster did not reach cluster_state:ok")
	return nil
}

func waitPing(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		var reply string
		if reply, err = do(addr, "PING"); err == nil && reply == "PONG" {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// do speaks just enough RESP to send a command and read a simple, error or
// bulk string reply.
func do(addr string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))

	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", fmt.Errorf("redis: %s", line[1:])
	case strings.HasPrefix(line, ":"):
		return line[1:], nil
	case strings.HasPrefix(line, "$"):
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return line, nil
}

// Dir returns the server's working directory.
func (s *Server) Dir() string { return s.dir }

// Sentinel is a Redis Sentinel process that monitors one master.
type Sentinel struct {
	*Server
	// MasterName is the name the Sentinel monitors the master under.
	MasterName string
	Master     *Server
}

// StartSentinel starts a master and one Sentinel that monitors it under
// the name "pdpmaster", with a quorum of 1, and waits until the Sentinel
// reports the master's address.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	master := Start(t)
	s := &Server{t: t, dir: t.TempDir(), Port: FreePort(t)}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	conf := filepath.Join(s.dir, "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
		"sentinel monitor pdpmaster 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds pdpmaster 5000\n", s.Port, s.dir, master.Port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatalf("write sentinel config: %v", err)
	}
	s.args = []string{conf, "--sentinel"}
	s.start()
	t.Cleanup(s.Kill)

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		reply, err := s.Do("SENTINEL", "get-master-addr-by-name", "pdpmaster")
		if err == nil && strings.HasPrefix(reply, "*2") {
			return &Sentinel{Server: s, MasterName: "pdpmaster", Master: master}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("sentinel on %s does not know the master", s.Addr)
	return nil
}
