package pdp

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// applyResult fills d from a policy result. The result is either a boolean
// or an object in the shape OPA's Envoy plugin accepts: allowed,
// http_status, headers, response_headers_to_add, request_headers_to_remove,
// body, dynamic_metadata, plus reasons. It returns an error for any other
// shape, which the engine turns into policy.error.
func applyResult(d *Decision, result any) error {
	switch r := result.(type) {
	case bool:
		d.Allow = r
		return nil
	case map[string]any:
		return applyObject(d, r)
	}
	return fmt.Errorf("policy result is %T, want boolean or object", result)
}

func applyObject(d *Decision, obj map[string]any) error {
	allowed, ok := obj["allowed"].(bool)
	if !ok {
		return fmt.Errorf("policy result object has no boolean \"allowed\"")
	}
	d.Allow = allowed

	if v, ok := obj["http_status"]; ok {
		status, err := statusCode(v)
		if err != nil {
			return err
		}
		d.HTTPStatus = status
	}
	var err error
	if d.Headers, err = headersOf(obj, "headers"); err != nil {
		return err
	}
	if d.ResponseHeadersToAdd, err = headersOf(obj, "response_headers_to_add"); err != nil {
		return err
	}
	if d.RequestHeadersToRemove, err = stringsOf(obj, "request_headers_to_remove"); err != nil {
		return err
	}
	if d.Reasons, err = reasonsOf(obj); err != nil {
		return err
	}
	if v, ok := obj["body"]; ok {
		body, ok := v.(string)
		if !ok {
			return fmt.Errorf("policy result \"body\" is %T, want string", v)
		}
		d.Body = body
	}
	if v, ok := obj["dynamic_metadata"]; ok {
		md, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("policy result \"dynamic_metadata\" is %T, want object", v)
		}
		d.DynamicMetadata = md
	}
	return nil
}

func statusCode(v any) (int, error) {
	var n int64
	switch s := v.(type) {
	case json.Number:
		i, err := s.Int64()
		if err != nil {
			return 0, fmt.Errorf("policy result \"http_status\" %q is not an integer", s)
		}
		n = i
	case float64:
		n = int64(s)
		if float64(n) != s {
			return 0, fmt.Errorf("policy result \"http_status\" %v is not an integer", s)
		}
	case int:
		n = int64(s)
	case int64:
		n = s
	default:
		return 0, fmt.Errorf("policy result \"http_status\" is %T, want number", v)
	}
	if n < 100 || n > 599 || http.StatusText(int(n)) == "" {
		return 0, fmt.Errorf("policy result \"http_status\" %d is not a valid HTTP status", n)
	}
	return int(n), nil
}

// headersOf reads a header object whose values are strings or string arrays.
func headersOf(obj map[string]any, key string) (Headers, error) {
	v, ok := obj[key]
	if !ok {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("policy result %q is %T, want object", key, v)
	}
	h := make(Headers, len(m))
	for name, val := range m {
		switch vv := val.(type) {
		case string:
			h.Add(name, vv)
		case []any:
			for _, item := range vv {
				s, ok := item.(string)
				if !ok {
					return nil, fmt.Errorf("policy result %q header %q has a non-string value", key, name)
				}
				h.Add(name, s)
			}
		default:
			return nil, fmt.Errorf("policy result %q header %q is %T, want string", key, name, val)
		}
	}
	return h, nil
}

func stringsOf(obj map[string]any, key string) ([]string, error) {
	v, ok := obj[key]
	if !ok {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("policy result %q is %T, want array", key, v)
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, fmt.Errorf("policy result %q has a non-string item", key)
		}
		out = append(out, s)
	}
	return out, nil
}

// reasonsOf accepts "reasons" as a string array, a set, or one string.
func reasonsOf(obj map[string]any) ([]string, error) {
	v, ok := obj["reasons"]
	if !ok {
		return nil, nil
	}
	if s, ok := v.(string); ok {
		return []string{s}, nil
	}
	return stringsOf(obj, "reasons")
}
