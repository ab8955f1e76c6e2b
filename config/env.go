package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "PDP_"

// applyEnv sets every field whose environment variable is present. The
// variable name is PDP_ followed by the YAML key path in upper case joined
// with "_", for example PDP_HTTP_ADDR or PDP_AUDIT_DIR. Values are parsed as
// YAML, so lists and objects can be given inline (PDP_ROUTES='[...]').
func applyEnv(cfg *Config, environ []string) error {
	env := make(map[string]string)
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}

	known := make(map[string]bool)
	var errs []string
	walkFields(reflect.ValueOf(cfg).Elem(), strings.TrimSuffix(EnvPrefix, "_"),
		func(name string, field reflect.Value) {
			known[name] = true
			value, ok := env[name]
			if !ok {
				return
			}
			if err := setField(field, value); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			}
		})
	for name := range env {
		if !known[name] {
			errs = append(errs, fmt.Sprintf("%s: no such setting", name))
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("environment overrides:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// walkFields calls visit for every yaml-tagged field, depth first, with the
// environment variable name of the field.
func walkFields(v reflect.Value, prefix string, visit func(name string, field reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" || !sf.IsExported() {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		field := v.Field(i)
		visit(name, field)
		if field.Kind() == reflect.Struct {
			walkFields(field, name, visit)
		}
	}
}

func setField(field reflect.Value, value string) error {
	if field.Kind() == reflect.String {
		field.SetString(value)
		return nil
	}
	target := reflect.New(field.Type())
	target.Elem().Set(field)
	if err := yaml.Unmarshal([]byte(value), target.Interface()); err != nil {
		return fmt.Errorf("invalid value: %v", err)
	}
	field.Set(target.Elem())
	return nil
}
