package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/authgate/pdp/pdp"
)

const testInstance = "pdp-test"

// testConfig returns a config for a fresh audit directory with its own
// checkpoint key file, generated on first Open.
func testConfig(t testing.TB) Config {
	t.Helper()
	root := t.TempDir()
	return Config{
		Dir:                   filepath.Join(root, "audit"),
		CheckpointKeyFile:     filepath.Join(root, "checkpoint.key"),
		CheckpointKeyGenerate: true,
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func openLog(t testing.TB, cfg Config) (*Log, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	l, err := Open(cfg, Options{Instance: testInstance, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l, logs
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testEvent(i int) *pdp.AuditEvent {
	return &pdp.AuditEvent{
		DecisionID:     pdp.NewDecisionID(),
		Time:           time.Date(2026, 12, 4, 12, 0, 0, i, time.UTC),
		FrontDoor:      pdp.FrontDoorEnvoyGRPC,
		Route:          "callbacks",
		Allow:          i%3 != 0,
		Reason:         pdp.ReasonAllowed,
		HTTPStatus:     200,
		BundleRevision: "2026-12-04.3",
		TraceID:        "4bf92f3577b34da6a3ce929d0e0e4736",
		InputDigest:    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Subject:        fmt.Sprintf("billing-%d", i),
		Issuer:         "https://idp.example.test",
		SpiffeID:       "spiffe://example.test/ns/billing/sa/sender",
		Tenant:         "t-42",
		Action:         "POST",
		Resource:       "/callbacks/payments",
		MessageID:      fmt.Sprintf("msg-%d", i),
		Sender:         "billing",
		Sequence:       uint64(1<<60 + i),
		HasSequence:    true,
	}
}

func record(t testing.TB, l *Log, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		ev := testEvent(i)
		if err := l.Record(context.Background(), ev); err != nil {
			t.Fatalf("Record %d: %v", i, err)
		}
		ids = append(ids, ev.DecisionID)
	}
	return ids
}

func chainFiles(t testing.TB, dir string) []string {
	t.Helper()
	chains, err := ListChains(dir)
	if err != nil {
		t.Fatal(err)
	}
	return chains[testInstance]
}

func publicKey(t testing.TB, cfg Config) ed25519.PublicKey {
	t.Helper()
	pub, err := LoadPublicKey(cfg.CheckpointKeyFile + PublicKeySuffix)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// verifyDir verifies the test instance's chain in dir and fails on a fault.
func verifyDir(t testing.TB, cfg Config) Result {
	t.Helper()
	res, err := Verify(chainFiles(t, cfg.Dir), VerifyOptions{PublicKey: publicKey(t, cfg)})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.Fault != nil {
		t.Fatalf("Verify fault: %v", res.Fault)
	}
	return res
}

func readAll(t testing.TB, files []string) string {
	t.Helper()
	var b bytes.Buffer
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}
