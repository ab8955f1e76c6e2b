// Package scenarios holds the policy and input files of the load
// harness's scenarios, embedded so the harness runs from any directory.
package scenarios

import "embed"

// Files holds every scenario file: the JSON inputs and request bodies and
// the Rego baseline policies for OPA.
//
//go:embed *.json *.rego
var Files embed.FS
