package pdp

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseTargetNormalizes(t *testing.T) {
	cases := []struct {
		raw      string
		segments []string
		query    map[string][]string
	}{
		{"/a/b", []string{"a", "b"}, map[string][]string{}},
		{"//admin/x", []string{"admin", "x"}, map[string][]string{}},
		{"/admin//x", []string{"admin", "x"}, map[string][]string{}},
		{"/%2Fadmin/x", []string{"admin", "x"}, map[string][]string{}},
		{"/admin/./x", []string{"admin", "x"}, map[string][]string{}},
		{"/admin/../admin/x", []string{"admin", "x"}, map[string][]string{}},
		{"/../../admin", []string{"admin"}, map[string][]string{}},
		{"/%61dmin", []string{"admin"}, map[string][]string{}},
		{"http://host.test/admin/x?a=1", []string{"admin", "x"}, map[string][]string{"a": {"1"}}},
		{"HTTPS://host.test", nil, map[string][]string{}},
		{"/a?x=1&x=2", []string{"a"}, map[string][]string{"x": {"1", "2"}}},
		{"/api/admin;/users", []string{"api", "admin", "users"}, map[string][]string{}},
		{"/api/admin;jsessionid=x/users", []string{"api", "admin", "users"}, map[string][]string{}},
		{"/search/100%25", []string{"search", "100%"}, map[string][]string{}},
		{"/caf%C3%A9", []string{"café"}, map[string][]string{}},
		{"/a?q=a+b&r=%2F", []string{"a"}, map[string][]string{"q": {"a b"}, "r": {"/"}}},
		{"", nil, map[string][]string{}},
		{"/", nil, map[string][]string{}},
		{"%2Fmy%2Ftest%2Fpath", []string{"my", "test", "path"}, map[string][]string{}},
		{"/a:b/c", []string{"a:b", "c"}, map[string][]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := ParseTarget(tc.raw)
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", tc.raw, err)
			}
			if len(got.Segments) != 0 || len(tc.segments) != 0 {
				if !reflect.DeepEqual(got.Segments, tc.segments) {
					t.Errorf("segments = %q, want %q", got.Segments, tc.segments)
				}
			}
			if !reflect.DeepEqual(got.Query, tc.query) {
				t.Errorf("query = %v, want %v", got.Query, tc.query)
			}
		})
	}
}

func TestParseTargetRejects(t *testing.T) {
	for _, raw := range []string{
		"/a%zz", "/a%", "/a%00b", "/%2",
		// Dot-segments an upstream may resolve where a plain reading does not.
		"/x/%2E%2E/admin", "/admin/..%2Fpublic/x", "/admin/x/..%2F..%2Fpublic", "/admin/%2e/x",
		"/public/..;/admin", "/public/..;jsessionid=1/admin", "/public/..%3B/admin",
		"/public\\..\\admin", "/public/%5C..%5Cadmin",
		// A fragment, after which some servers still resolve dot-segments.
		"/public/#/../../admin/x", "/a#frag",
		// Trailing dots and spaces, which Windows servers strip.
		"/api/admin./users", "/api/admin%20/users", "/api/admin.;x/users",
		// Overlong UTF-8 and double encoding.
		"/public/%c0%ae%c0%ae%c0%afadmin", "/public/..%252Fadmin", "/public/%252e%252e%252fadmin",
	} {
		if _, err := ParseTarget(raw); err != ErrInvalidPath {
			t.Errorf("ParseTarget(%q) error = %v, want ErrInvalidPath", raw, err)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, seed := range []string{
		"/a/b?c=d", "//admin/x", "/%2Fadmin/x", "/admin/./x", "/admin/../admin/x",
		"http://h/admin", "%2Fmy%2Ftest", "/a?x=1&x=2#f", "/a%zz", "/%00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := ParseTarget(raw)
		if err != nil {
			return
		}
		for _, s := range got.Segments {
			if s == "" || s == "." || s == ".." || strings.Contains(s, "/") {
				t.Fatalf("ParseTarget(%q) segment %q is not normalized", raw, s)
			}
		}
		// Normalizing the normalized path changes nothing, so a second
		// decoding step elsewhere cannot reveal another segment list.
		again, err := ParseTarget(escapeSegments(got.Segments))
		if err != nil {
			t.Fatalf("ParseTarget of re-escaped %q: %v", got.Path(), err)
		}
		if !reflect.DeepEqual(again.Segments, got.Segments) && len(got.Segments) > 0 {
			t.Fatalf("ParseTarget(%q) = %q, re-parsed %q", raw, got.Segments, again.Segments)
		}
	})
}

// escapeSegments joins segments with each one percent-encoded as a whole.
func escapeSegments(segments []string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c == '/' || c == '%' || c == '?' || c == '#' || c < 0x21 || c >= 0x7f {
				b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
				continue
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}
