package audit

import (
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The testdata/jcs files are the RFC 8785 test vectors of the reference
// implementation by the RFC's authors. Outputs are stored as hex.
func TestCanonicalizeRFC8785Vectors(t *testing.T) {
	inputs, err := filepath.Glob("testdata/jcs/*.input.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no JCS vectors found: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".input.json")
		t.Run(name, func(t *testing.T) {
			input, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			wantHex, err := os.ReadFile(strings.TrimSuffix(in, ".input.json") + ".output.hex")
			if err != nil {
				t.Fatal(err)
			}
			want, err := hex.DecodeString(strings.TrimSpace(string(wantHex)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := canonicalize(input)
			if err != nil {
				t.Fatalf("canonicalize: %v", err)
			}
			if string(got) != string(want) {
				t.Errorf("canonical form\n got %s\nwant %s", got, want)
			}
		})
	}
}

// Number vectors from RFC 8785 Appendix B: IEEE-754 bit patterns and the
// ECMAScript text they must serialize to.
func TestAppendNumberRFC8785AppendixB(t *testing.T) {
	cases := []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
		{0x4340000000000001, "9007199254740994"},
		{0x4340000000000002, "9007199254740996"},
	}
	for _, c := range cases {
		got, err := appendNumber(nil, math.Float64frombits(c.bits))
		if err != nil {
			t.Errorf("%016x: %v", c.bits, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%016x = %s, want %s", c.bits, got, c.want)
		}
	}
	for _, bits := range []uint64{0x7fffffffffffffff, 0x7ff0000000000000} {
		if _, err := appendNumber(nil, math.Float64frombits(bits)); err == nil {
			t.Errorf("%016x: want an error for NaN or Infinity", bits)
		}
	}
}

func TestCanonicalizeRejectsDuplicateKeys(t *testing.T) {
	_, err := canonicalize([]byte(`{"allow":false,"allow":true}`))
	if err == nil || !strings.Contains(err.Error(), "duplicate key") {
		t.Fatalf("err = %v, want duplicate key error", err)
	}
}

func TestCanonicalizeIgnoresOrderAndWhitespace(t *testing.T) {
	a, err := canonicalize([]byte(`{"b": 1, "a": [true, null, "x"]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := canonicalize([]byte("{\n  \"a\":[true,null,\"x\"],\n  \"b\":1.0\n}"))
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("%s != %s", a, b)
	}
}

func TestLessUTF16SurrogateOrder(t *testing.T) {
	// U+FB33 is one UTF-16 unit (0xFB33); U+1F602 starts with 0xD83D, so
	// it sorts first in UTF-16 order although its code point is larger.
	if !lessUTF16("\U0001F602", "\uFB33") {
		t.Error("U+1F602 should sort before U+FB33")
	}
	if lessUTF16("\uFB33", "\U0001F602") {
		t.Error("U+FB33 should sort after U+1F602")
	}
	if !lessUTF16("a", "ab") || lessUTF16("ab", "a") {
		t.Error("a prefix should sort first")
	}
}
