package recordfmt

import (
	"errors"
	"strings"
	"testing"
)

type rec struct {
	V     int    `json:"v"`
	ID    string `json:"id"`
	Token string `json:"token"`
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int
		wantErr bool
	}{
		{`{"v":1,"id":"a","token":"secret"}`, 1, false},
		{`{"v":2,"id":"a","token":"secret","added_in_2":{"x":[1,2]}}`, 2, false}, // a later version's fields are ignored
		{`{"id":"a","token":"secret"}`, 0, true},                                 // unversioned
		{`{"v":0,"id":"a","token":"secret"}`, 0, true},
		{`{"v":"1","id":"a","token":"secret"}`, 0, true},
		{`{"v":1,"id":7,"token":"secret"}`, 0, true},
		{`secret`, 0, true},
		{``, 0, true},
	} {
		var r rec
		got, err := Decode([]byte(tc.in), &r)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("Decode(%s) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil {
			if !errors.Is(err, ErrNotARecord) {
				t.Errorf("Decode(%s) error %v is not ErrNotARecord", tc.in, err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("Decode(%s) error quotes the value: %v", tc.in, err)
			}
			continue
		}
		if r.ID != "a" || r.Token != "secret" || r.V != tc.want {
			t.Errorf("Decode(%s) read %+v", tc.in, r)
		}
	}
}
