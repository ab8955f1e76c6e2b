package api

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// viaEncodingJSON is the reference conversion: encoding/json with numbers
// kept exact, then ast.InterfaceToValue.
func viaEncodingJSON(raw []byte) (ast.Value, error) {
	if !json.Valid(raw) {
		return nil, errNotJSON
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return ast.InterfaceToValue(v)
}

// checkSameAsEncodingJSON requires parseJSONValue to accept exactly what
// the reference accepts and to produce the same value.
func checkSameAsEncodingJSON(t *testing.T, raw []byte) {
	t.Helper()
	want, wantErr := viaEncodingJSON(raw)
	got, gotErr := parseJSONValue(raw)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%q: error %v, encoding/json error %v", raw, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if got.Compare(want) != 0 || got.String() != want.String() {
		t.Fatalf("%q:\ngot  %v\nwant %v", raw, got, want)
	}
}

var jsonCases = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5e+300`, `123456789012345678901234567890`,
	`"plain"`, `"esc \" \\ \/ \b \f \n \r \t"`, `"\u00e9\u4e2d\ud83d\ude00"`, `"\u0000"`,
	`"\ud800"`, `"\udc00x"`, `"\ud800\u0041"`, "\"\xff\xfe\"", "\"a\xc3\"", "\"\xed\xa0\x80\"",
	`{"a":1,"a":2}`, `{"a":{"b":[1,{"c":null}]},"a":{"d":true}}`,
	`{"input":{"attributes":{"request":{"http":{"method":"GET","headers":{"x":"y"}}}},"parsed_path":["a","b"]}}`,
	`  {"k" : [ 1 , 2 ] }  `, "{\"k\\u00e9\xff\":1}",
	`{`, `[1,]`, `{"a":1,}`, `01`, `1.`, `.5`, `+1`, `NaN`, `Infinity`, `-inf`, `"\x"`, "\"tab\there\"",
	`1e9999999`, `{"n":-1e999999}`, `[1E400000]`, `1e-9999999`,
	`{"a":1} {"b":2}`, `[1] x`, ``, ` `, `"unterminated`, `{"a"}`, `tru`, `nul`,
}

func TestParseJSONValueMatchesEncodingJSON(t *testing.T) {
	for _, c := range jsonCases {
		checkSameAsEncodingJSON(t, []byte(c))
	}
	// Deeper than fastjson parses; encoding/json accepts it.
	deep := strings.Repeat(`{"a":[`, 400) + "1" + strings.Repeat("]}", 400)
	checkSameAsEncodingJSON(t, []byte(deep))
}

func FuzzParseJSONValue(f *testing.F) {
	for _, c := range jsonCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkSameAsEncodingJSON(t, raw)
	})
}

func TestInputOfBody(t *testing.T) {
	for _, tc := range []struct {
		body, want, err string
	}{
		{body: ``}, {body: "  \n"}, {body: `{}`}, {body: `{"input":null}`}, {body: `{"other":1}`},
		{body: `{"input":{"a":1}}`, want: `{"a": 1}`},
		{body: `{"input":{"a":1},"input":{"b":2}}`, want: `{"b": 2}`},
		{body: `{"input":[1,"x"],"extra":true}`, want: `[1, "x"]`},
		{body: `null`},
		{body: `{"INPUT":{"a":1}}`, want: `{"a": 1}`},
		{body: `{"input":{"a":1},"Input":{"a":2}}`, want: `{"a": 2}`},
		{body: `{"Input":{"a":1},"input":{"a":2}}`, want: `{"a": 2}`},
		{body: `{"input":"\ud800"}`, want: "\"\ufffd\""},
		{body: `{"INPUT":"\ud83d\ude00"}`, want: "\"\U0001f600\""},
		{body: `[{"input":1}]`, err: "the body is a JSON array, want an object"},
		{body: `"input"`, err: "the body is a JSON string, want an object"},
		{body: `true`, err: "the body is a JSON bool, want an object"},
		{body: `{"input":}`, err: "not a well-formed JSON value: invalid character '}' looking for beginning of value"},
	} {
		got, err := inputOfBody([]byte(tc.body))
		switch {
		case tc.err != "":
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: error %v, want %q", tc.body, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.body, err)
		case tc.want == "" && got != nil:
			t.Errorf("%q: input %v, want none", tc.body, got)
		case tc.want != "" && (got == nil || got.(ast.Value).String() != tc.want):
			t.Errorf("%q: input %v, want %s", tc.body, got, tc.want)
		}
	}
}

// FuzzInputOfBody checks the fastjson path of inputOfBody against the
// encoding/json path it falls back to.
func FuzzInputOfBody(f *testing.F) {
	for _, c := range append(jsonCases, `{"INPUT":1,"input":2}`, `{"iNpUt":{"x":[1,2]}}`, `{"input\u212a":1}`) {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, gotErr := inputOfBody(raw)
		want, wantErr := inputViaStruct(raw)
		if len(bytes.TrimSpace(raw)) == 0 {
			return
		}
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: error %v, encoding/json error %v", raw, gotErr, wantErr)
		}
		if gotErr != nil {
			return
		}
		if (got == nil) != (want == nil) {
			t.Fatalf("%q: input %v, encoding/json input %v", raw, got, want)
		}
		if got != nil && got.(ast.Value).Compare(want.(ast.Value)) != 0 {
			t.Fatalf("%q: input %v, encoding/json input %v", raw, got, want)
		}
	})
}
