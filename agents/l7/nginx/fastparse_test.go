package nginx

import (
	"reflect"
	"testing"
)

var accessLines = []string{
	`{"l":"lst-1","ip":"127.0.0.1","u":"/index.html","s":200,"us":"200","uht":"0.001","rt":0.002,"bi":78,"bo":230,"lc":""}`,
	`{"l":"lst-1","ip":"127.0.0.9","u":"/","s":502,"us":"502, 200","uht":"-, 0.004","rt":1.250,"bi":78,"bo":230,"lc":""}`,
	`{"l":"lst-1","ip":"127.0.0.9","u":"/x","s":502,"us":"502 : 502","uht":"- : -","rt":0.000,"bi":1,"bo":2,"lc":""}`,
	`{"l":"lst-1","ip":"127.0.0.9","u":"/x","s":503,"us":"-","uht":"-","rt":0.000,"bi":1,"bo":2,"lc":"REJECTED"}`,
	`{"l":"lst-1","ip":"127.0.0.9","u":"/x","s":504,"us":"504","uht":"-","rt":30.000,"bi":1,"bo":2,"lc":""}`,
	`{"l":"lst-1","ip":"127.0.0.9","u":"/q\"uote","s":200,"us":"200","uht":"0.001","rt":0.002,"bi":1,"bo":2,"lc":""}`,
	`{"l":"lst-1","ip":"::1","u":"/ü","s":404,"us":"404","uht":"0.010","rt":0.011,"bi":10,"bo":20,"lc":""}`,
}

func TestFastParseAgreesWithJSON(t *testing.T) {
	for _, line := range accessLines {
		want, werr := parseLine([]byte(line))
		got, gerr := parseAccessLine([]byte(line))
		if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s\n fast %+v %v\n json %+v %v", line, got, gerr, want, werr)
		}
	}
	for _, bad := range []string{"", `{"l":"x"`, `{"l":"x","ip":1}`, "garbage", `{"l":"a","ip":"b","u":"c","s":x}`} {
		if _, err := parseAccessLine([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func BenchmarkParseAccessLine(b *testing.B) {
	line := []byte(accessLines[0])
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := parseAccessLine(line); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := parseLine(line); err != nil {
				b.Fatal(err)
			}
		}
	})
}
