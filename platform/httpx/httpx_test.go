package httpx_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/elbcloud/elb/platform/httpx"
	"github.com/gin-gonic/gin"
)

func TestEngineServesProbesMetricsAndRecoversPanics(t *testing.T) {
	ready := &httpx.Readiness{}
	e := httpx.NewEngine(httpx.Options{Service: "test", Ready: ready})
	e.GET("/boom", func(*gin.Context) { panic("secret stack detail") })
	get := func(path string) (int, string) {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w.Code, w.Body.String()
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz = %d", code)
	}
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("readyz before ready = %d", code)
	}
	ready.Set(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("readyz = %d", code)
	}
	code, body := get("/boom")
	if code != 500 || strings.Contains(body, "secret") || !strings.Contains(body, "faultstring") {
		t.Errorf("panic answer = %d %s", code, body)
	}
	code, body = get("/metrics")
	if code != 200 || !strings.Contains(body, `elb_http_requests_total{code="500",method="GET",route="/boom",service="test"} 1`) {
		t.Errorf("metrics = %d\n%s", code, body)
	}
}
