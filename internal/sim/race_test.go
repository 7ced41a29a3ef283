//go:build race

package sim

// Under the race detector a seed costs about ten times as much: the -race
// run of the whole suite runs 1,000 seeds, and scripts/test runs the
// 10,000 of CI without it.
func init() { raceSeeds = 1000 }
