package apigw_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/elbcloud/elb/platform/httpx"
	"github.com/elbcloud/elb/services/apigw"
	"github.com/elbcloud/elb/services/apigw/app"
	"github.com/elbcloud/elb/services/apigw/app/apptest"
	"github.com/elbcloud/elb/services/apigw/auth"
	"github.com/elbcloud/elb/services/apigw/ports"
	"github.com/elbcloud/elb/services/apigw/readmodel"
)

var param = regexp.MustCompile(`\{[^}]+\}|:[a-z]+`)

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(apigw.OpenAPI(), &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json: %v (version %q)", err, doc.OpenAPI)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			documented[strings.ToUpper(m)+" "+param.ReplaceAllString(p, "{}")] = true
		}
	}
	model := readmodel.New()
	store := apptest.NewMemStore(model.Apply)
	authn, _ := auth.New(auth.Config{})
	e := httpx.NewEngine(httpx.Options{Service: "t"})
	ports.New(app.New(store, model, store, nil, app.Options{}), authn, ports.Options{OpenAPI: apigw.OpenAPI()}).Register(e)
	for _, r := range e.Routes() {
		if strings.HasPrefix(r.Path, "/v2/") || r.Path == "/" {
			continue // /v2 mirrors /v2.0; / is version discovery
		}
		if key := r.Method + " " + param.ReplaceAllString(r.Path, "{}"); !documented[key] {
			t.Errorf("route %s is not in openapi.json", key)
		}
	}
	srvReq, _ := http.NewRequest("GET", "/openapi.json", nil)
	w := &recorder{header: http.Header{}}
	e.ServeHTTP(w, srvReq)
	if w.code != 200 || len(w.body) != len(apigw.OpenAPI()) {
		t.Fatalf("GET /openapi.json: %d, %d bytes", w.code, len(w.body))
	}
}

type recorder struct {
	header http.Header
	code   int
	body   []byte
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	r.body = append(r.body, b...)
	return len(b), nil
}
func (r *recorder) WriteHeader(c int) { r.code = c }
