package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestLogRecordAndVerify(t *testing.T) {
	cfg := testConfig(t)
	l, _ := openLog(t, cfg)
	ids := record(t, l, 10)
	if err := l.Ready(); err != nil {
		t.Fatalf("Ready = %v, want nil", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	res := verifyDir(t, cfg)
	if res.Decisions != 10 {
		t.Errorf("decisions = %d, want 10", res.Decisions)
	}
	if !res.EndsWithCheckpoint {
		t.Error("chain should end with the checkpoint written by Close")
	}
	if res.SignaturesChecked != 1 {
		t.Errorf("signatures checked = %d, want 1", res.SignaturesChecked)
	}
	content := readAll(t, chainFiles(t, cfg.Dir))
	for _, id := range ids {
		if !strings.Contains(content, id) {
			t.Errorf("decision %s missing from the file", id)
		}
	}
}

func TestRecordFields(t *testing.T) {
	cfg := testConfig(t)
	l, _ := openLog(t, cfg)
	ev := testEvent(1)
	if err := l.Record(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	l.Close()

	first, _, _ := strings.Cut(readAll(t, chainFiles(t, cfg.Dir)), "\n")
	var rec map[string]any
	if err := json.Unmarshal([]byte(first), &rec); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type": "decision", "seq": 1.0, "instance": testInstance, "decision_id": ev.DecisionID,
		"time": "2026-12-04T12:00:00.000000001Z", "subject": ev.Subject, "issuer": ev.Issuer,
		"spiffe_id": ev.SpiffeID, "tenant": "t-42", "action": "POST",
		"resource": "/callbacks/payments", "message_id": "msg-1", "sender": "billing",
		"message_sequence": "1152921504606846977", "allow": true, "reason": "policy.allowed",
		"http_status": 200.0, "route": "callbacks", "front_door": "envoy_grpc",
		"bundle_revision": "2026-12-04.3", "trace_id": ev.TraceID, "input_digest": ev.InputDigest,
		"prev_hash": GenesisHash,
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("field %s = %v, want %v", k, rec[k], v)
		}
	}
	if h, _ := rec["hash"].(string); len(h) != 64 {
		t.Errorf("hash = %q, want 64 hex digits", h)
	}
	if len(rec) != len(want)+1 {
		t.Errorf("record has %d fields, want %d: %v", len(rec), len(want)+1, rec)
	}
}

func TestLogGroupCommitSharesWrites(t *testing.T) {
	cfg := testConfig(t)
	l, _ := openLog(t, cfg)
	const callers, each = 32, 20
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := l.Record(context.Background(), testEvent(i)); err != nil {
					t.Errorf("Record: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := l.Stats()
	l.Close()

	if st.Records != callers*each {
		t.Errorf("records = %d, want %d", st.Records, callers*each)
	}
	if st.Batches >= st.Records/2 {
		t.Errorf("batches = %d for %d records, want group commit to share writes",
			st.Batches, st.Records)
	}
	verifyDir(t, cfg)
}

func TestLogDurabilityModes(t *testing.T) {
	for _, d := range []Durability{DurabilityAlways, DurabilityBatch, DurabilityNone} {
		t.Run(string(d), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Durability = d
			l, _ := openLog(t, cfg)
			record(t, l, 5)
			l.Close()
			if res := verifyDir(t, cfg); res.Decisions != 5 {
				t.Errorf("decisions = %d, want 5", res.Decisions)
			}
		})
	}
}

func TestLogRotationContinuesChain(t *testing.T) {
	cfg := testConfig(t)
	cfg.RotateSize = 2000
	cfg.CheckpointEvery = 7
	l, _ := openLog(t, cfg)
	record(t, l, 40)
	l.Close()

	files := chainFiles(t, cfg.Dir)
	if len(files) < 5 {
		t.Fatalf("files = %d, want at least 5 after rotation", len(files))
	}
	res := verifyDir(t, cfg)
	if res.Decisions != 40 {
		t.Errorf("decisions = %d, want 40", res.Decisions)
	}
	if res.Checkpoints < 5 {
		t.Errorf("checkpoints = %d, want at least 5 (every 7 records)", res.Checkpoints)
	}
	if res.Files != len(files) {
		t.Errorf("verified %d files, want %d", res.Files, len(files))
	}
}

func TestLogRotationByTime(t *testing.T) {
	cfg := testConfig(t)
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg.RotateInterval = time.Hour
	l, err := Open(cfg, Options{Instance: testInstance, Logger: quietLogger(), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	record(t, l, 3)
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	record(t, l, 3)
	l.Close()

	if files := chainFiles(t, cfg.Dir); len(files) != 2 {
		t.Fatalf("files = %v, want 2", files)
	}
	verifyDir(t, cfg)
}

func TestLogReopenContinuesChain(t *testing.T) {
	cfg := testConfig(t)
	for round := 0; round < 3; round++ {
		l, _ := openLog(t, cfg)
		record(t, l, 4)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	res := verifyDir(t, cfg)
	if res.Decisions != 12 {
		t.Errorf("decisions = %d, want 12", res.Decisions)
	}
	if len(chainFiles(t, cfg.Dir)) != 1 {
		t.Errorf("reopening should append to the newest file")
	}
}

func TestLogRecoversTornLine(t *testing.T) {
	cfg := testConfig(t)
	l, _ := openLog(t, cfg)
	record(t, l, 5)
	l.Close()

	files := chainFiles(t, cfg.Dir)
	newest := files[len(files)-1]
	f, err := os.OpenFile(newest, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"action":"POST","allow":tr`)
	f.Close()

	if res, _ := Verify(files, VerifyOptions{}); res.Fault == nil ||
		!strings.Contains(res.Fault.Problem, "torn") {
		t.Fatalf("fault = %v, want torn record", res.Fault)
	}

	l, logs := openLog(t, cfg)
	record(t, l, 3)
	l.Close()
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "torn record") {
		t.Errorf("want a warning about the torn record, logs:\n%s", logs)
	}
	if res := verifyDir(t, cfg); res.Decisions != 8 {
		t.Errorf("decisions = %d, want 8", res.Decisions)
	}
}

func TestLogRejectsSecondWriter(t *testing.T) {
	cfg := testConfig(t)
	l, _ := openLog(t, cfg)
	defer l.Close()
	if _, err := Open(cfg, Options{Instance: testInstance, Logger: quietLogger()}); err == nil {
		t.Fatal("second Open of the same chain should fail")
	}
}

func TestLogTimeCheckpoint(t *testing.T) {
	cfg := testConfig(t)
	cfg.CheckpointEvery = -1
	cfg.CheckpointInterval = 20 * time.Millisecond
	l, _ := openLog(t, cfg)
	defer l.Close()
	record(t, l, 2)

	deadline := time.Now().Add(5 * time.Second)
	for {
		if cp, ok := l.LastCheckpoint(); ok {
			if cp.RecordCount != 2 || cp.Seq != 3 {
				t.Errorf("checkpoint = %+v, want record_count 2, seq 3", cp)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no time-based checkpoint within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCheckpointExport(t *testing.T) {
	cfg := testConfig(t)
	cfg.CheckpointEvery = 5
	l, _ := openLog(t, cfg)
	record(t, l, 12)
	last, ok := l.LastCheckpoint()
	l.Close()
	if !ok {
		t.Fatal("no checkpoint after 12 records with checkpoint_every 5")
	}

	pub := publicKey(t, cfg)
	anchors, err := ReadCheckpoints(filepath.Join(cfg.Dir, "checkpoints-"+testInstance+".jsonl"), pub)
	if err != nil {
		t.Fatal(err)
	}
	if anchors.Fault != nil {
		t.Fatalf("checkpoints file fault: %v", anchors.Fault)
	}
	if len(anchors.Checkpoints) != 3 {
		t.Fatalf("exported checkpoints = %d, want 3 (two by count, one at Close)", len(anchors.Checkpoints))
	}
	if anchors.Checkpoints[1].Hash != last.Hash {
		t.Errorf("exported checkpoint %s differs from LastCheckpoint %s", anchors.Checkpoints[1].Hash, last.Hash)
	}
	res, err := Verify(chainFiles(t, cfg.Dir), VerifyOptions{PublicKey: pub, Anchors: &anchors})
	if err != nil || res.Fault != nil {
		t.Fatalf("Verify with anchors: %v %v", err, res.Fault)
	}
}

func TestCheckpointKeyFormats(t *testing.T) {
	seed := strings.Repeat("ab", 32)
	for name, data := range map[string][]byte{
		"raw seed": []byte(strings.Repeat("\x01", 32)),
		"hex seed": []byte(seed + "\n"),
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.CheckpointKeyGenerate = false
			if err := os.WriteFile(cfg.CheckpointKeyFile, data, 0o600); err != nil {
				t.Fatal(err)
			}
			l, _ := openLog(t, cfg)
			record(t, l, 1)
			l.Close()
			key, err := parseSigningKey(data)
			if err != nil {
				t.Fatal(err)
			}
			pub := key.Public().(ed25519.PublicKey)
			res, err := Verify(chainFiles(t, cfg.Dir), VerifyOptions{PublicKey: pub})
			if err != nil || res.Fault != nil {
				t.Fatalf("Verify: %v %v", err, res.Fault)
			}
		})
	}
}

func TestGeneratedKeyMode(t *testing.T) {
	cfg := testConfig(t)
	l, _ := openLog(t, cfg)
	l.Close()
	info, err := os.Stat(cfg.CheckpointKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", info.Mode().Perm())
	}
}

func TestMissingConfiguredKeyFails(t *testing.T) {
	cfg := testConfig(t)
	cfg.CheckpointKeyGenerate = false
	if _, err := Open(cfg, Options{Instance: testInstance, Logger: quietLogger()}); err == nil {
		t.Fatal("Open should fail when a configured key file is missing")
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	cfg := Config{Durability: "sometimes", BatchMaxRecords: -1, CheckpointKeyGenerate: true,
		RedisStream: StreamConfig{Queue: -5}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate = nil, want errors")
	}
	for _, key := range []string{"durability", "batch_max_records", "checkpoint_key_generate", "redis_stream.queue"} {
		if !strings.Contains(err.Error(), key+":") {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
	if err := (&Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v, want nil (defaults)", err)
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
dir: /var/lib/pdp/audit
durability: always
batch_max_wait: 5ms
batch_max_records: 64
rotate_size: 1048576
rotate_interval: 1h
checkpoint_every: 500
checkpoint_interval: 30s
checkpoint_key_file: /etc/pdp/audit.key
redis_stream:
  enabled: true
  key_prefix: "audit:"
  max_len: 1000
`
	var cfg Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Dir: "/var/lib/pdp/audit", Durability: DurabilityAlways, BatchMaxWait: 5 * time.Millisecond,
		BatchMaxRecords: 64, RotateSize: 1 << 20, RotateInterval: time.Hour, CheckpointEvery: 500,
		CheckpointInterval: 30 * time.Second, CheckpointKeyFile: "/etc/pdp/audit.key",
		RedisStream: StreamConfig{Enabled: true, KeyPrefix: "audit:", MaxLen: 1000},
	}
	if cfg != want {
		t.Errorf("decoded\n %+v\nwant\n %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

func TestSegmentNameRoundTrip(t *testing.T) {
	name := segmentName("pdp-a/1 x", 42, time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC))
	if name != "audit-pdp-a_1_x-0000000000000042-20261204T120000Z.jsonl" {
		t.Errorf("name = %s", name)
	}
	inst, seq, ok := parseSegmentName(name)
	if !ok || inst != "pdp-a_1_x" || seq != 42 {
		t.Errorf("parse = %q %d %v", inst, seq, ok)
	}
	if _, _, ok := parseSegmentName("checkpoints-pdp-a_1_x.jsonl"); ok {
		t.Error("the checkpoint export file must not parse as an audit file")
	}
}

func TestRecordAfterClose(t *testing.T) {
	cfg := testConfig(t)
	l, _ := openLog(t, cfg)
	l.Close()
	if err := l.Record(context.Background(), testEvent(1)); err != ErrClosed {
		t.Errorf("Record after Close = %v, want ErrClosed", err)
	}
	if err := l.Ready(); err != ErrClosed {
		t.Errorf("Ready after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}
