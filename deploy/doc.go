// Package deploy holds configsync's deployment files: Kubernetes manifests under
// kubernetes/ and a Grafana dashboard under grafana/. Its tests check them against
// the binary: kinds, settings, probes, selectors and the metrics the dashboard uses.
package deploy
