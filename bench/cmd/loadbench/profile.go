package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// adminToken is the admin bearer token of PDPs the harness profiles. The
// admin listener is on loopback and lives only as long as the run.
const adminToken = "loadbench-admin-token"

// adminSettings returns the admin listener settings that serve profiles,
// with its token file written to dir.
func adminSettings(dir string) (map[string]any, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	tokenFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(adminToken), 0o600); err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("%s:%d", loopback, port)
	return map[string]any{"addr": addr, "token_file": tokenFile, "pprof": true}, "http://" + addr, nil
}

// profileDir is the -profile directory; empty takes no profiles.
var profileDir string

// startProfile records a CPU profile of srv for d into the -profile
// directory, named after the scenario, server and load. It returns a
// function that waits for the profile and reports a failure to write it.
// For a server without an admin listener it does nothing.
func startProfile(ctx context.Context, srv *server, label string, d time.Duration) func() {
	if srv.adminURL == "" || profileDir == "" {
		return func() {}
	}
	scenario := filepath.Base(filepath.Dir(srv.logPath))
	name := strings.NewReplacer(" ", "-", "(", "", ")", "", "/s", "rps").
		Replace(fmt.Sprintf("%s-%s-%s.pprof", scenario, srv.name, label))
	path := filepath.Join(profileDir, name)
	seconds := max(1, int(d.Round(time.Second)/time.Second))
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", srv.adminURL, seconds)

	done := make(chan error, 1)
	go func() { done <- fetchTo(ctx, url, path, d+30*time.Second) }()
	return func() {
		if err := <-done; err != nil {
			slog.Warn("CPU profile not written", "file", path, "error", err)
			return
		}
		slog.Info("CPU profile written", "file", path)
	}
}

// fetchTo saves the response body of an authenticated admin GET to path.
func fetchTo(ctx context.Context, url, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
