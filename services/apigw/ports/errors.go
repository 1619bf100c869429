// Package ports is the gateway's inbound side: the Octavia v2 HTTP API, the
// audit and metrics endpoints and authentication middleware. Handlers decode
// and validate the request, call the app service, and encode the answer;
// errors become HTTP answers in one table (errorTable).
package ports

import (
	"errors"
	"net/http"

	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/services/apigw/app"
	"github.com/elbcloud/elb/services/apigw/auth"
	"github.com/elbcloud/elb/services/apigw/domain"
	"github.com/elbcloud/elb/services/stats/statsapi"
	"github.com/gin-gonic/gin"
)

// Request-level sentinels (the rest come from domain, app, auth, statsapi).
var (
	// ErrBodyTooLarge is returned for a request body over MaxBody bytes.
	ErrBodyTooLarge = errors.New("request body too large")
	// ErrAdminNetwork is returned for an admin endpoint called from outside
	// the admin CIDRs.
	ErrAdminNetwork = errors.New("admin endpoints are not reachable from this network")
	// ErrLagging is returned when a write succeeded but the read model did
	// not show it within the wait bound.
	ErrLagging = errors.New("the change was accepted but is not visible yet; retry the read")
	// ErrMethod is returned for a known path with an unsupported method.
	ErrMethod = errors.New("method not allowed")
)

// errorRule maps one sentinel to an HTTP status and a stable error code.
type errorRule struct {
	err    error
	status int
	code   string
}

// errorTable is the one place errors become HTTP answers. The first match
// wins; anything unmatched is a 500 with no detail.
var errorTable = []errorRule{
	{ErrBodyTooLarge, http.StatusRequestEntityTooLarge, "body_too_large"},
	{domain.ErrInvalid, http.StatusBadRequest, "invalid_input"},
	{eventstore.ErrInvalidFilter, http.StatusBadRequest, "invalid_filter"},
	{statsapi.ErrInvalidQuery, http.StatusBadRequest, "invalid_metric_query"},
	{auth.ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated"},
	{ErrAdminNetwork, http.StatusForbidden, "admin_network"},
	{auth.ErrForbidden, http.StatusForbidden, "forbidden"},
	{app.ErrQuotaExceeded, http.StatusForbidden, "quota_exceeded"},
	{domain.ErrNotFound, http.StatusNotFound, "not_found"},
	{ErrMethod, http.StatusMethodNotAllowed, "method_not_allowed"},
	{domain.ErrImmutable, http.StatusConflict, "immutable"},
	{domain.ErrHasChildren, http.StatusConflict, "has_children"},
	{domain.ErrConflict, http.StatusConflict, "conflict"},
	{app.ErrBusy, http.StatusConflict, "concurrent_change"},
	{eventstore.ErrConcurrency, http.StatusConflict, "concurrent_change"},
	{ErrLagging, http.StatusServiceUnavailable, "read_model_lagging"},
	{auth.ErrIdentityUnavailable, http.StatusServiceUnavailable, "identity_unavailable"},
	{statsapi.ErrUnavailable, http.StatusServiceUnavailable, "stats_unavailable"},
}

// Fault is Octavia's error body plus a stable code.
type Fault struct {
	FaultCode   string  `json:"faultcode"`
	FaultString string  `json:"faultstring"`
	DebugInfo   *string `json:"debuginfo"`
	Code        string  `json:"code"`
}

// classify returns the status, code and user-facing message of err.
func classify(err error) (int, string, string) {
	for _, r := range errorTable {
		if errors.Is(err, r.err) {
			return r.status, r.code, err.Error()
		}
	}
	return http.StatusInternalServerError, "internal_error", "internal error"
}

// fail writes err as an Octavia fault and aborts the request.
func fail(c *gin.Context, err error) {
	status, code, msg := classify(err)
	fc := "Client"
	if status >= 500 {
		fc = "Server"
		if code == "internal_error" {
			logger(c).Error("request failed", "path", c.Request.URL.Path, "err", err)
		}
	}
	if status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Keystone uri="", Bearer`)
	}
	c.AbortWithStatusJSON(status, Fault{FaultCode: fc, FaultString: msg, Code: code})
}
