// Package policies holds the shipped example bundle: a Rego policy in
// package pdp.authz with its data tables and unit tests. `pdp serve` runs
// it when no bundle is configured.
package policies

import "embed"

// Bundle is the shipped bundle: the manifest, data.json and every Rego file
// of this directory, tests included. Files starting with "." are embedded
// only when named, hence the explicit .manifest.
//
//go:embed .manifest data.json *.rego
var Bundle embed.FS
