package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashDirEnv tells the re-executed test binary to act as the crash child
// and names its audit directory.
const crashDirEnv = "AUDIT_CRASH_CHILD_DIR"

// TestCrashChild is the child of TestCrashRecovery: it records decisions
// from several goroutines until it is killed, printing each decision id
// after Record acknowledged it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestCrashRecovery")
	}
	cfg := Config{Dir: dir, CheckpointEvery: 50}
	l, err := Open(cfg, Options{Instance: testInstance, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				ev := testEvent(i)
				if err := l.Record(context.Background(), ev); err != nil {
					fmt.Fprintln(os.Stderr, "record:", err)
					os.Exit(4)
				}
				out.Lock()
				fmt.Fprintln(os.Stdout, ev.DecisionID)
				out.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestCrashRecovery(t *testing.T) {
	root := t.TempDir()
	dir := root + "/audit"

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	// Kill the child in the middle of its burst, then read every id it
	// printed before it died.
	const killAfter = 3000
	var acked []string
	sc := bufio.NewScanner(stdout)
	killed := false
	deadline := time.Now().Add(60 * time.Second)
	for sc.Scan() {
		line := sc.Text()
		if len(line) != 26 {
			continue // test framework output
		}
		acked = append(acked, line)
		if !killed && (len(acked) >= killAfter || time.Now().After(deadline)) {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before it was killed, after %d records", len(acked))
	}

	// Reopen: recovery continues the chain from the last intact record.
	cfg := Config{Dir: dir, CheckpointEvery: 50}
	l, err := Open(cfg, Options{Instance: testInstance, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	more := record(t, l, 20)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	pub, err := LoadPublicKey(DefaultKeyFile(dir) + PublicKeySuffix)
	if err != nil {
		t.Fatal(err)
	}
	files := chainFiles(t, dir)
	res, err := Verify(files, VerifyOptions{PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	if res.Fault != nil {
		t.Fatalf("chain invalid after crash and recovery: %v", res.Fault)
	}
	content := readAll(t, files)
	missing := 0
	for _, id := range append(acked, more...) {
		if !strings.Contains(content, `"decision_id":"`+id+`"`) {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged decisions are missing from the chain", missing, len(acked)+len(more))
	}
	t.Logf("child acknowledged %d records before SIGKILL; chain has %d decisions", len(acked), res.Decisions)
}
