//go:build load

package worker

import "testing"

// Behind the load build tag (scripts/test: go test -tags load): every inline patch
// makes its own run, so this burst takes about 90s under -race on two cores.

// TestLoadPatchBurstInline: the same burst with each config carried inside its event
// (`configsync publish patch --config`). Such a config becomes a version only when a
// worker processes its event, so no run can cover a later patch: each event may make
// one run, never more, and the newest config still wins.
func TestLoadPatchBurstInline(t *testing.T) {
	runLoad(t, true, loadPatches)
}
