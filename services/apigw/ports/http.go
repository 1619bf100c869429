package ports

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/apigw/app"
	"github.com/elbcloud/elb/services/apigw/auth"
	"github.com/elbcloud/elb/services/apigw/domain"
	"github.com/gin-gonic/gin"
)

// Authenticator resolves a token to a principal.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (auth.Principal, error)
}

// Server is the HTTP API.
type Server struct {
	svc       *app.Service
	authn     Authenticator
	adminNets []netip.Prefix
	log       *slog.Logger
	openapi   []byte
}

// Options configure a Server.
type Options struct {
	// AdminCIDRs limit where admin powers apply; empty means anywhere.
	AdminCIDRs []netip.Prefix
	Logger     *slog.Logger
	// OpenAPI is the document served at /openapi.json.
	OpenAPI []byte
}

// New returns the API server.
func New(svc *app.Service, authn Authenticator, o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Server{svc: svc, authn: authn, adminNets: o.AdminCIDRs, log: o.Logger, openapi: o.OpenAPI}
}

func logger(c *gin.Context) *slog.Logger {
	if l, ok := c.Get("logger"); ok {
		return l.(*slog.Logger)
	}
	return slog.Default()
}

// Register adds every route to the engine.
func (s *Server) Register(e *gin.Engine) {
	e.Use(func(c *gin.Context) { c.Set("logger", s.log); c.Next() })
	e.NoRoute(func(c *gin.Context) { fail(c, fmt.Errorf("path %s: %w", c.Request.URL.Path, domain.ErrNotFound)) })
	e.NoMethod(func(c *gin.Context) { fail(c, ErrMethod) })
	e.GET("/openapi.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", s.openapi) })
	e.GET("/", s.versions)
	for _, prefix := range []string{"/v2.0", "/v2"} {
		g := e.Group(prefix, s.authenticate)
		s.octavia(g)
	}
	v1 := e.Group("/v1", s.authenticate)
	v1.GET("/events", s.listEvents)
	v1.GET("/metrics", s.listMetrics)
	v1.GET("/metrics/statistics", s.metricStatistics)
	v1.GET("/loadbalancers/:id/top", s.top)
}

func (s *Server) octavia(g *gin.RouterGroup) {
	lb := g.Group("/lbaas")
	lb.GET("/loadbalancers", s.listLBs)
	lb.POST("/loadbalancers", s.createLB)
	lb.GET("/loadbalancers/:id", s.getLB)
	lb.PUT("/loadbalancers/:id", s.updateLB)
	lb.DELETE("/loadbalancers/:id", s.deleteLB)
	lb.GET("/loadbalancers/:id/status", s.lbStatus)
	lb.GET("/loadbalancers/:id/stats", s.lbStats)
	lb.PUT("/loadbalancers/:id/failover", s.failover)

	lb.GET("/listeners", s.listListeners)
	lb.POST("/listeners", s.createListener)
	lb.GET("/listeners/:id", s.getListener)
	lb.PUT("/listeners/:id", s.updateListener)
	lb.DELETE("/listeners/:id", s.deleteListener)
	lb.GET("/listeners/:id/stats", s.listenerStats)

	lb.GET("/pools", s.listPools)
	lb.POST("/pools", s.createPool)
	lb.GET("/pools/:id", s.getPool)
	lb.PUT("/pools/:id", s.updatePool)
	lb.DELETE("/pools/:id", s.deletePool)
	lb.GET("/pools/:id/members", s.listMembers)
	lb.POST("/pools/:id/members", s.createMember)
	lb.PUT("/pools/:id/members", s.batchMembers)
	lb.GET("/pools/:id/members/:mid", s.getMember)
	lb.PUT("/pools/:id/members/:mid", s.updateMember)
	lb.DELETE("/pools/:id/members/:mid", s.deleteMember)

	lb.GET("/healthmonitors", s.listMonitors)
	lb.POST("/healthmonitors", s.createMonitor)
	lb.GET("/healthmonitors/:id", s.getMonitor)
	lb.PUT("/healthmonitors/:id", s.updateMonitor)
	lb.DELETE("/healthmonitors/:id", s.deleteMonitor)

	lb.GET("/l7policies", s.listPolicies)
	lb.POST("/l7policies", s.createPolicy)
	lb.GET("/l7policies/:id", s.getPolicy)
	lb.PUT("/l7policies/:id", s.updatePolicy)
	lb.DELETE("/l7policies/:id", s.deletePolicy)
	lb.GET("/l7policies/:id/rules", s.listRules)
	lb.POST("/l7policies/:id/rules", s.createRule)
	lb.GET("/l7policies/:id/rules/:rid", s.getRule)
	lb.PUT("/l7policies/:id/rules/:rid", s.updateRule)
	lb.DELETE("/l7policies/:id/rules/:rid", s.deleteRule)

	// Octavia serves quotas under /lbaas/quotas; gophercloud (following
	// neutron-lbaas) calls /quotas. Both work.
	for _, q := range []*gin.RouterGroup{lb, g} {
		q.GET("/quotas", s.listQuotas)
		q.GET("/quotas/:project", s.getQuota)
		q.PUT("/quotas/:project", s.setQuota)
		q.DELETE("/quotas/:project", s.resetQuota)
	}
}

func (s *Server) versions(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"versions": []gin.H{{"id": "v2.0", "status": "CURRENT",
		"links": []gin.H{{"rel": "self", "href": "/v2.0/"}}}}})
}

// tokenOf reads X-Auth-Token or Authorization: Bearer.
func tokenOf(r *http.Request) string {
	if t := r.Header.Get("X-Auth-Token"); t != "" {
		return t
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func (s *Server) fromAdminNet(r *http.Request) bool {
	if len(s.adminNets) == 0 {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.adminNets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// authenticate resolves the token and stores the command context.
func (s *Server) authenticate(c *gin.Context) {
	p, err := s.authn.Authenticate(c.Request.Context(), tokenOf(c.Request))
	if err != nil {
		if !errors.Is(err, auth.ErrUnauthenticated) && !errors.Is(err, auth.ErrForbidden) && !errors.Is(err, auth.ErrIdentityUnavailable) {
			err = errors.Join(auth.ErrIdentityUnavailable, err)
		}
		fail(c, err)
		return
	}
	key := c.GetHeader("Idempotency-Key")
	if len(key) > 255 || strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		fail(c, domain.Invalid("Idempotency-Key", "must be at most 255 printable characters"))
		return
	}
	corr := c.GetHeader("X-Openstack-Request-Id")
	if corr == "" {
		corr = c.GetHeader("X-Request-Id")
	}
	if corr == "" || len(corr) > 128 {
		corr = "req-" + events.NewID()
	}
	c.Header("X-Openstack-Request-Id", corr)
	cmd := app.Cmd{P: p, Admin: p.IsAdmin() && s.fromAdminNet(c.Request), IdempotencyKey: key,
		Scope: c.Request.Method + " " + c.Request.URL.Path, CorrelationID: corr}
	c.Set("cmd", cmd)
	c.Set("logger", s.log.With("project", p.Project, "user", p.User, "correlation_id", corr))
	c.Next()
}

func cmdOf(c *gin.Context) app.Cmd {
	v, _ := c.Get("cmd")
	cmd, _ := v.(app.Cmd)
	return cmd
}

// adminOnly rejects callers that are not effective admins, telling an admin
// outside the admin networks why.
func (s *Server) adminOnly(c *gin.Context) bool {
	cmd := cmdOf(c)
	if cmd.Admin {
		return true
	}
	if cmd.P.IsAdmin() {
		fail(c, ErrAdminNetwork)
	} else {
		fail(c, auth.ErrForbidden)
	}
	return false
}

// decode reads and strictly decodes an enveloped body.
func decode[R any](c *gin.Context, wrapper string) (*R, bool) {
	body, err := readBody(c.Request)
	if err != nil {
		fail(c, err)
		return nil, false
	}
	r := new(R)
	if err := DecodeEnvelope(body, wrapper, r); err != nil {
		fail(c, err)
		return nil, false
	}
	return r, true
}

// checkProject rejects a project_id in a body that is not the caller's
// (admins may name any project).
func checkProject(cmd app.Cmd, p string) error {
	if p != "" && p != cmd.P.Project && !cmd.Admin {
		return auth.ErrForbidden
	}
	if p != "" && !domain.ValidID(p) {
		return domain.Invalid("project_id", "%q is not a valid project id", p)
	}
	return nil
}
