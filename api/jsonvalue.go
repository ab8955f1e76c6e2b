package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/valyala/fastjson"
)

// jsonParsers are reused between requests; a fastjson parser keeps its
// buffers for the next document.
var jsonParsers fastjson.ParserPool

// errNotJSON is returned for a body that is not one well-formed JSON
// value.
var errNotJSON = errors.New("not a well-formed JSON value")

// parseJSONValue converts one JSON document straight to a Rego value,
// without the map[string]any that encoding/json would build first. The
// syntax check is encoding/json's own (json.Valid), so a document is
// accepted exactly when encoding/json accepts it. As with encoding/json,
// invalid UTF-8 and lone surrogates in strings become U+FFFD and the last
// of duplicate object keys wins. Numbers keep their text, and those OPA
// cannot evaluate are rejected as OPA's decoder rejects them.
func parseJSONValue(raw []byte) (ast.Value, error) {
	if !json.Valid(raw) {
		return nil, syntaxError(raw)
	}
	return withFastjson(raw, jsonToValue, viaInterface)
}

// withFastjson runs convert on raw parsed by fastjson, or fallback on raw
// where fastjson would read it differently from encoding/json. fastjson
// keeps a lone surrogate escape such as \ud800 as text, where encoding/json
// decodes U+FFFD, so documents with surrogate escapes take the fallback,
// and so do those past fastjson's own limits, such as nesting deeper than
// fastjson.MaxDepth. raw must have passed json.Valid.
func withFastjson[T any](raw []byte, convert func(*fastjson.Value) (T, error), fallback func([]byte) (T, error)) (T, error) {
	if hasSurrogateEscape(raw) {
		return fallback(raw)
	}
	p := jsonParsers.Get()
	defer jsonParsers.Put(p)
	v, err := p.ParseBytes(raw)
	if err != nil {
		return fallback(raw)
	}
	return convert(v)
}

// syntaxError returns encoding/json's description of what is wrong with
// raw, which json.Valid has rejected.
func syntaxError(raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("%w: %v", errNotJSON, err)
	}
	return errNotJSON
}

// inputOfBody returns the input member of a POST /v1/data body as a Rego
// value. encoding/json, which OPA decodes the body with, matches a struct
// field's name in any letter case, and the last matching key wins; so does
// inputOfBody. It returns nil for an empty or null body, a body without
// the member, or a null member, which OPA all treats as no input.
func inputOfBody(raw []byte) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, syntaxError(raw)
	}
	return withFastjson(raw, inputMember, inputViaStruct)
}

// inputMember returns the input member of a parsed body, as inputOfBody
// describes.
func inputMember(v *fastjson.Value) (any, error) {
	switch v.Type() {
	case fastjson.TypeNull:
		return nil, nil
	case fastjson.TypeObject:
	default:
		return nil, fmt.Errorf("the body is a JSON %s, want an object", fastjsonTypeName(v.Type()))
	}

	obj, _ := v.Object()
	var member *fastjson.Value
	obj.Visit(func(key []byte, item *fastjson.Value) {
		if strings.EqualFold(string(key), "input") {
			member = item
		}
	})
	if member == nil || member.Type() == fastjson.TypeNull {
		return nil, nil
	}
	return jsonToValue(member)
}

// inputViaStruct is inputOfBody through encoding/json, for bodies that
// fastjson would read differently.
func inputViaStruct(raw []byte) (any, error) {
	var body struct {
		Input *any `json:"input"`
	}
	if err := decodeOPAJSON(raw, &body); err != nil {
		return nil, err
	}
	if body.Input == nil {
		return nil, nil
	}
	return ast.InterfaceToValue(*body.Input)
}

// fastjsonTypeName names a JSON type as encoding/json's errors do.
func fastjsonTypeName(t fastjson.Type) string {
	switch t {
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "bool"
	case fastjson.TypeObject:
		return "object"
	}
	return t.String()
}

// viaInterface decodes raw with encoding/json, numbers kept exact, and
// converts the result.
func viaInterface(raw []byte) (ast.Value, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", errNotJSON, err)
	}
	return ast.InterfaceToValue(v)
}

// hasSurrogateEscape reports whether raw may contain a \uD800-\uDFFF
// escape. An escaped backslash before "ud8" can make it report true for a
// document without one, which only costs the slower path.
func hasSurrogateEscape(raw []byte) bool {
	for {
		i := bytes.Index(raw, []byte(`\u`))
		if i < 0 || i+4 > len(raw) {
			return false
		}
		if c := raw[i+2]; (c == 'd' || c == 'D') && strings.IndexByte("89abcdefABCDEF", raw[i+3]) >= 0 {
			return true
		}
		raw = raw[i+2:]
	}
}

// jsonToValue converts a parsed fastjson value. The returned value holds
// copies of every string, so the parser may be reused afterwards.
func jsonToValue(v *fastjson.Value) (ast.Value, error) {
	switch v.Type() {
	case fastjson.TypeObject:
		obj, _ := v.Object()
		out := ast.NewObjectWithCapacity(obj.Len())
		var err error
		obj.Visit(func(key []byte, item *fastjson.Value) {
			if err != nil {
				return
			}
			var value ast.Value
			if value, err = jsonToValue(item); err == nil {
				// Insert replaces the value of a key seen before, so the
				// last of duplicate keys wins.
				out.Insert(ast.StringTerm(validString(key)), ast.NewTerm(value))
			}
		})
		if err != nil {
			return nil, err
		}
		return out, nil
	case fastjson.TypeArray:
		items, _ := v.Array()
		terms := make([]*ast.Term, len(items))
		for i, item := range items {
			value, err := jsonToValue(item)
			if err != nil {
				return nil, err
			}
			terms[i] = ast.NewTerm(value)
		}
		return ast.NewArray(terms...), nil
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return ast.String(validString(b)), nil
	case fastjson.TypeNumber:
		// json.Valid has checked the number's syntax; as for OPA's own
		// decoding, InterfaceToValue rejects exponents too large to
		// evaluate and reuses interned small integers.
		return ast.InterfaceToValue(json.Number(v.String()))
	case fastjson.TypeTrue:
		return ast.Boolean(true), nil
	case fastjson.TypeFalse:
		return ast.Boolean(false), nil
	case fastjson.TypeNull:
		return ast.NullValue, nil
	}
	return nil, fmt.Errorf("%w: unexpected JSON type %s", errNotJSON, v.Type())
}

// validString copies b into a string, replacing each byte that is not
// part of valid UTF-8 with U+FFFD as encoding/json does.
func validString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.Write(b[:size])
		}
		b = b[size:]
	}
	return sb.String()
}
