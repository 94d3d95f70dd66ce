// Package mapping turns resources fetched from a tool into blueprint entities, following
// Port's integration config (resources[] of kind, jq selector and jq entity mappings)
// with Ocean's semantics made exact.
//
// The package is pure: it parses and validates configs, compiles their jq programs once
// per config version, and evaluates them on raw JSON items. It does no network, disk or
// Redis I/O; callers hand it bytes and receive entities.
package mapping
