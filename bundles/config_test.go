package bundles

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{name: "empty is valid", cfg: Config{}},
		{name: "directory is valid", cfg: Config{Path: "/etc/pdp/bundle"}},
		{
			name: "remote is valid",
			cfg:  Config{URL: "https://bundles.example.test", Polling: PollingConfig{MinDelay: 10 * time.Second, MaxDelay: 20 * time.Second}},
		},
		{
			name: "every problem at once",
			cfg: Config{
				Path:        "/b",
				URL:         "ftp://x",
				Entrypoint:  "input.x",
				MaxSize:     -1,
				Polling:     PollingConfig{MinDelay: 1500 * time.Millisecond, MaxDelay: time.Second},
				Credentials: CredentialsConfig{BearerToken: "a", BearerTokenFile: "/t"},
				Signing: SigningConfig{
					Required: true,
					KeyID:    "nope",
					Keys:     []KeyConfig{{ID: "k", Algorithm: "RS007"}, {ID: "k", Key: "a", KeyFile: "/b"}},
				},
			},
			want: []string{
				"bundle: set only one of path and url",
				"bundle.url:",
				"bundle.entrypoint:",
				"bundle.max_size:",
				"bundle.polling.min_delay:",
				"bundle.polling.max_delay:",
				"bundle.credentials:",
				"bundle.signing.keys[0]: set exactly one of key and key_file",
				"bundle.signing.keys[0].algorithm:",
				"bundle.signing.keys[1].id: \"k\" is used twice",
				"bundle.signing.key_id:",
			},
		},
		{
			name: "required signing without keys",
			cfg:  Config{Signing: SigningConfig{Required: true}},
			want: []string{"bundle.signing.keys: required is true but no keys are configured"},
		},
		{
			name: "remote settings without url",
			cfg:  Config{Resource: "b.tar.gz"},
			want: []string{"resource, credentials and tls apply only with url"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate returned nil")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
