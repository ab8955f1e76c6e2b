package redisproc

import "testing"

func TestRestartDropsState(t *testing.T) {
	s := Start(t)
	if reply, err := s.Do("SET", "k", "v"); err != nil || reply != "OK" {
		t.Fatalf("SET = %q, %v; want OK", reply, err)
	}
	s.Restart()
	if reply, err := s.Do("GET", "k"); err != nil || reply != "" {
		t.Fatalf("GET after restart = %q, %v; want empty", reply, err)
	}
}

func TestClusterReachesOK(t *testing.T) {
	c := StartCluster(t, 3)
	if got := len(c.Addrs()); got != 3 {
		t.Fatalf("cluster has %d nodes, want 3", got)
	}
}
