package workload

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]Workload{
		`{"ns":"emojivoto","pod":"web-0"}`: {"emojivoto", "web-0"},
		`emojivoto:web-0`:                  {"emojivoto", "web-0"},
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("%s: %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "web-0", `{"ns":"a"}`, `{"ns":`, "A:b", "a:b c"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`{"ns":"a","pod":"b"}`)
	f.Add("a:b")
	f.Fuzz(func(t *testing.T, s string) {
		if w, err := Parse(s); err == nil && (w.Namespace == "" || w.Pod == "") {
			t.Fatalf("%q parsed to %+v", s, w)
		}
	})
}
