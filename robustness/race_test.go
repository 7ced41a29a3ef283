//go:build race

package robustness

// raceEnabled: the candidates are built with -race too, so a data race in
// the library under faults fails the suite.
const raceEnabled = true
