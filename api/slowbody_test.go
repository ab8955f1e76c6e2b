package api

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestStalledBodyFreesItsSlot(t *testing.T) {
	engine, _ := testEngine(t, "package pdp.authz\n\nallow := true\n", "data.pdp.authz.allow")
	limits := NewLimits(LimitsConfig{MaxConcurrent: 1, DecisionTimeout: 300 * time.Millisecond},
		LimitsOptions{})
	srv := startHTTP(t, Options{Engine: engine, Limits: limits})

	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Announce 100 bytes, send one, then stall.
	_, err = conn.Write([]byte("POST /v1/decision HTTP/1.1\r\nHost: pdp\r\n" +
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"))
	if err != nil {
		t.Fatal(err)
	}

	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to the stalled request: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("stalled request status = %d, want 503 (request.timeout)", resp.StatusCode)
	}

	status := httpStatus(t, "POST", srv.URL+"/v1/decision", []byte(`{}`), nil)
	if status != http.StatusOK {
		t.Errorf("request after the stall: status %d, want 200 (slot released)", status)
	}
}
