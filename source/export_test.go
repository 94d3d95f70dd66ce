package source

// CleanRelPath exposes cleanRelPath to the external tests.
var CleanRelPath = cleanRelPath
