package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file implements the JSON Canonicalization Scheme of RFC 8785 (JCS):
// object keys sorted by their UTF-16 code units, no whitespace, strings
// escaped as ECMAScript's JSON.stringify does, and numbers written as
// ECMAScript's Number.prototype.toString writes an IEEE-754 double.
//
// NOTE: no maintained JCS module was available from this project's module
// list, so the encoder is written here and tested against the RFC 8785
// reference vectors.

// maxSafeInteger is 2^53. JCS numbers are IEEE-754 doubles, which hold
// every integer up to 2^53 exactly and skip some above it.
const maxSafeInteger = 1 << 53

// canonicalize returns the JCS form of one JSON text. It rejects duplicate
// object keys and invalid numbers.
func canonicalize(data []byte) ([]byte, error) {
	v, err := decodeJSON(data)
	if err != nil {
		return nil, err
	}
	return appendCanonical(nil, v)
}

// appendCanonical appends the JCS encoding of v. v is built from nil, bool,
// string, json.Number, float64, int, int64, uint64, map[string]any and
// []any, the types decodeJSON and the record builder produce.
func appendCanonical(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case string:
		return appendString(dst, x)
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, fmt.Errorf("number %s is out of range: %w", x, err)
		}
		return appendNumber(dst, f)
	case float64:
		return appendNumber(dst, x)
	case int:
		return appendInteger(dst, int64(x))
	case int64:
		return appendInteger(dst, x)
	case uint64:
		if x > maxSafeInteger {
			return nil, fmt.Errorf("integer %d is above 2^53", x)
		}
		return strconv.AppendUint(dst, x, 10), nil
	case map[string]any:
		return appendObject(dst, x)
	case []any:
		dst = append(dst, '[')
		for i, item := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendCanonical(dst, item); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	}
	return nil, fmt.Errorf("cannot canonicalize a value of type %T", v)
}

func appendObject(dst []byte, obj map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return lessUTF16(keys[i], keys[j]) })

	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = appendString(dst, k); err != nil {
			return nil, err
		}
		dst = append(dst, ':')
		if dst, err = appendCanonical(dst, obj[k]); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

// lessUTF16 orders strings by their UTF-16 code units, as RFC 8785
// requires. It differs from byte order only when a character above
// U+FFFF (a surrogate pair, 0xD800-0xDBFF first) meets one in U+E000-U+FFFF.
func lessUTF16(a, b string) bool {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			ua, ub := firstUTF16Unit(ra), firstUTF16Unit(rb)
			if ua != ub {
				return ua < ub
			}
			// Both are surrogate pairs with the same high surrogate, so
			// the low surrogates order as the code points do.
			return ra < rb
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) < len(b)
}

func firstUTF16Unit(r rune) rune {
	if r < 0x10000 {
		return r
	}
	return 0xD800 + (r-0x10000)>>10
}

// appendString writes s as JSON.stringify does: only '"', '\\' and the
// controls U+0000-U+001F are escaped, everything else is raw UTF-8.
func appendString(dst []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("string %q is not valid UTF-8", s)
	}
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			dst = append(dst, '\\', '"')
		case c == '\\':
			dst = append(dst, '\\', '\\')
		case c >= 0x20:
			dst = append(dst, c)
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		default:
			const hex = "0123456789abcdef"
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
	}
	return append(dst, '"'), nil
}

func appendInteger(dst []byte, n int64) ([]byte, error) {
	if n > maxSafeInteger || n < -maxSafeInteger {
		return nil, fmt.Errorf("integer %d is outside ±2^53", n)
	}
	return strconv.AppendInt(dst, n, 10), nil
}

// appendNumber writes f as ECMAScript's Number.prototype.toString does. strconv's shortest round-trip digits are the
// digits that algorithm selects; only the layout differs.
func appendNumber(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("number %v has no JSON form", f)
	}
	if f == 0 {
		return append(dst, '0'), nil
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}

	// Shortest digits d1...dk and exponent, with value 0.d1...dk * 10^n.
	sci := strconv.FormatFloat(f, 'e', -1, 64)
	mantissa, exp, _ := strings.Cut(sci, "e")
	digits := strings.Replace(mantissa, ".", "", 1)
	e, err := strconv.Atoi(exp)
	if err != nil {
		return nil, fmt.Errorf("format number %v: %w", f, err)
	}
	k, n := len(digits), e+1

	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits...)
		for i := 0; i < n-k; i++ {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for i := 0; i < -n; i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 > 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst, nil
}

// decodeJSON parses one JSON text into the generic types appendCanonical
// takes, with numbers kept as json.Number. Unlike encoding/json it rejects
// duplicate object keys, so two readers cannot see different values for the
// same record.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: data after the top-level value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return decodeObject(dec)
		case '[':
			return decodeArray(dec)
		}
		return nil, fmt.Errorf("invalid JSON: unexpected %q", t)
	default:
		return t, nil
	}
}

func decodeObject(dec *json.Decoder) (map[string]any, error) {
	obj := make(map[string]any)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("invalid JSON: object key is %v", tok)
		}
		if _, dup := obj[key]; dup {
			return nil, fmt.Errorf("invalid JSON: duplicate key %q", key)
		}
		if obj[key], err = decodeValue(dec); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return obj, nil
}

func decodeArray(dec *json.Decoder) ([]any, error) {
	list := []any{}
	for dec.More() {
		v, err := decodeValue(dec)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return list, nil
}
