package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteMicroReportsOtherMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "micro.txt")
	out := "BenchmarkStore-2 1 206630178 ns/op 24.22 heap-MB 253.9 heap-bytes/entry\n" +
		"BenchmarkStore-2 1 200000000 ns/op 26.00 heap-MB 260.0 heap-bytes/entry\n" +
		"BenchmarkStore-2 1 210000000 ns/op 25.00 heap-MB 250.0 heap-bytes/entry\n" +
		"BenchmarkEval-2 100 23766 ns/op 9284 B/op 185 allocs/op\n"
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	writeMicro(&b, path)
	report := b.String()
	for _, want := range []string{
		"| BenchmarkStore-2 | 3 | 206.6 ms | 0 | 0 | 25 heap-MB, 253.9 heap-bytes/entry |",
		"| BenchmarkEval-2 | 1 | 23 µs | 9284 | 185 |  |",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}
