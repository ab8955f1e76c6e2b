// Package deploy holds the deployment files (envoy.yaml, nginx.conf) and
// the tests that check them: the Envoy configuration against Envoy's
// protobuf schemas, and the NGINX configuration with a real nginx.
package deploy
