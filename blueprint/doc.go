// Package blueprint reads Port blueprints: the schemas (properties, relations) that the
// catalog's entities must fit.
//
// configsync needs blueprints for two jobs: checking that a mapping config only writes
// properties and relations its target blueprint has, and creating the blueprints an
// integration ships with (Ocean's .port/resources/blueprints.json) when they are missing.
// The first job needs a few fields understood; the second needs the document handed back
// to Port exactly as it came. So the types model what configsync reasons about
// (identifiers, property types, relation targets, required lists) and carry everything
// else (enumColors, calculation properties, Port fields added after this package was
// written) verbatim, so that a blueprint survives Parse and json.Marshal without losing
// data.
//
// Parse accepts Ocean's array form or a single blueprint object, and reports every
// problem it finds at once, each naming the blueprint and the field, because blueprint
// files are edited by hand and fixing one error per run is slow. Set indexes parsed
// blueprints by identifier for lookups. The package does no I/O.
package blueprint
