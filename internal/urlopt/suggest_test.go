package urlopt

import "testing"

func TestSuggest(t *testing.T) {
	known := []string{"TTL", "RENEW_INTERVAL", "ID", "URL", "dial_timeout", "prefix"}
	for _, tc := range []struct {
		in   string
		want string // "" for no suggestion
	}{
		{"TLL", "TTL"},                        // swap
		{"RENEW_INTERVALL", "RENEW_INTERVAL"}, // insert
		{"RENEWINTERVAL", "RENEW_INTERVAL"},   // delete
		{"dial_timout", "dial_timeout"},
		{"Prefix", "prefix"}, // case
		{"TEST_BIN", ""},     // unrelated
		{"IDX", "ID"},
		{"X", ""},       // one edit from ID, but too short to call a typo
		{"timeout", ""}, // far from dial_timeout
		{"renew_interval", "RENEW_INTERVAL"},
	} {
		got, ok := Suggest(tc.in, known)
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("Suggest(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
}
