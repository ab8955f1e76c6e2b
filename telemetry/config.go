package telemetry

import (
	"errors"
	"fmt"
	"net"
)

// Trace exporters accepted in TracingConfig.Exporter.
const (
	ExporterNone     = "none"
	ExporterStdout   = "stdout"
	ExporterOTLPGRPC = "otlp_grpc"
	ExporterOTLPHTTP = "otlp_http"
)

// DefaultSampleRatio is the share of new traces sampled when
// TracingConfig.SampleRatio is unset.
const DefaultSampleRatio = 1.0

// TracingConfig selects where decision spans go. The zero value exports
// nothing: spans are not recorded, but a caller's trace id is still read
// from the traceparent header and written to the audit record.
type TracingConfig struct {
	// Exporter is none, stdout, otlp_grpc or otlp_http. Default none.
	Exporter string `yaml:"exporter"`
	// Endpoint is the OTLP collector as host:port, required for the OTLP
	// exporters. There is no default, so nothing is sent anywhere unless
	// an operator names a collector.
	Endpoint string `yaml:"endpoint"`
	// Insecure sends OTLP without TLS, for a collector on loopback or in the
	// same pod. Default false.
	Insecure bool `yaml:"insecure"`
	// SampleRatio is the share of new traces that are sampled, from 0 to 1.
	// A caller's sampled flag in traceparent overrides it (parent-based
	// sampling). Default 1.
	SampleRatio *float64 `yaml:"sample_ratio"`
}

// Ratio returns the configured sample ratio or DefaultSampleRatio.
func (c *TracingConfig) Ratio() float64 {
	if c.SampleRatio == nil {
		return DefaultSampleRatio
	}
	return *c.SampleRatio
}

// exporter returns the configured exporter name, none when empty.
func (c *TracingConfig) exporter() string {
	if c.Exporter == "" {
		return ExporterNone
	}
	return c.Exporter
}

// Validate reports every problem in the tracing configuration, each with
// its key.
func (c *TracingConfig) Validate() error {
	var errs []error
	switch c.exporter() {
	case ExporterNone, ExporterStdout:
		if c.Endpoint != "" {
			errs = append(errs, fmt.Errorf("endpoint: set to %q but exporter %q sends no OTLP",
				c.Endpoint, c.exporter()))
		}
	case ExporterOTLPGRPC, ExporterOTLPHTTP:
		if err := validateEndpoint(c.Endpoint); err != nil {
			errs = append(errs, fmt.Errorf("endpoint: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("exporter: %q is not one of none, stdout, otlp_grpc, otlp_http",
			c.Exporter))
	}
	if r := c.Ratio(); r < 0 || r > 1 || r != r {
		errs = append(errs, fmt.Errorf("sample_ratio: must be between 0 and 1, got %v", r))
	}
	return errors.Join(errs...)
}

func validateEndpoint(endpoint string) error {
	if endpoint == "" {
		return errors.New("required for the OTLP exporters, as host:port")
	}
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", endpoint, err)
	}
	if host == "" || port == "" {
		return fmt.Errorf("%q needs both a host and a port", endpoint)
	}
	return nil
}
