// Package demo holds the example configsync dev loads with --demo: blueprints, and an
// integration (type file) over a handful of JSON files, written as the documents
// --load and the API take.
package demo

import "embed"

// Files holds blueprints.yaml, integration.yaml and data/.
//
//go:embed blueprints.yaml integration.yaml data
var Files embed.FS
