package urlopt

import "strings"

// ElectorParams are the query parameters the election package takes out
// of every backend URL before the backend parses the rest (election.ParamTTL
// and the others; a test in the election package keeps the two lists
// equal). A backend's unknown-parameter error suggests them too.
var ElectorParams = []string{"ttl", "renew_interval", "drift_margin", "renew_timeout", "op_timeout"}

// Suggest returns the name in known closest to name, compared without
// case, if it is close enough to be a typo of it: at most two single-byte
// edits (insert, delete, replace, or swap of neighbours) and fewer than
// half of name's length.
func Suggest(name string, known []string) (string, bool) {
	n := strings.ToLower(name)
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(n, strings.ToLower(k)); d < bestD && 2*d < len(n) {
			best, bestD = k, d
		}
	}
	return best, best != ""
}

// editDistance is the optimal string alignment distance between a and b:
// the number of inserts, deletes, replacements and swaps of neighbouring
// bytes that turn one into the other.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
