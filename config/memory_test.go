package config

import (
	"strings"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		limit string
		want  int64
		bad   bool
	}{
		{limit: "auto"},
		{limit: "off"},
		{limit: "16777216", want: 16 << 20},
		{limit: "64MiB", want: 64 << 20},
		{limit: "96MiB", want: 96 << 20},
		{limit: "2GiB", want: 2 << 30},
		{limit: "", bad: true},
		{limit: "0", bad: true},
		{limit: "-5MiB", bad: true},
		{limit: "96MB", bad: true},
		{limit: "lots", bad: true},
		{limit: "99999999999GiB", bad: true},
	} {
		got, err := MemoryConfig{GCPercent: 100, Limit: tc.limit}.LimitBytes()
		if tc.bad {
			if err == nil {
				t.Errorf("limit %q: got %d, want an error", tc.limit, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("limit %q = %d, %v; want %d", tc.limit, got, err, tc.want)
		}
	}
}

func TestMemoryFromFileAndEnv(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Memory.GCPercent != DefaultGCPercent || cfg.Memory.Limit != MemoryLimitAuto {
		t.Errorf("default memory = %+v, want gc_percent %d and limit auto", cfg.Memory, DefaultGCPercent)
	}

	path := writeConfig(t, "memory:\n  gc_percent: 200\n  limit: 128MiB\n")
	cfg, err = Load(path, []string{"PDP_MEMORY_GC_PERCENT=300"})
	if err != nil {
		t.Fatal(err)
	}
	if limit, _ := cfg.Memory.LimitBytes(); cfg.Memory.GCPercent != 300 || limit != 128<<20 {
		t.Errorf("memory = %+v, want gc_percent 300 from the environment and limit 128MiB", cfg.Memory)
	}

	path = writeConfig(t, "memory:\n  limit: 1MiB\n")
	if _, err := Load(path, nil); err == nil || !strings.Contains(err.Error(), "below the minimum") {
		t.Errorf("limit 1MiB: error %v, want one about the minimum", err)
	}

	path = writeConfig(t, "memory:\n  gc_percent: -2\n  limit: 12 apples\n")
	_, err = Load(path, nil)
	if err == nil {
		t.Fatal("Load accepted gc_percent -2 and limit \"12 apples\"")
	}
	for _, want := range []string{"memory: gc_percent:", "memory: limit:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestAdminPprofNeedsAdminListener(t *testing.T) {
	path := writeConfig(t, "admin:\n  pprof: true\n")
	_, err := Load(path, nil)
	if err == nil || !strings.Contains(err.Error(), "admin.pprof: requires admin.addr") {
		t.Errorf("admin.pprof without admin.addr: error %v, want one naming admin.addr", err)
	}
}
