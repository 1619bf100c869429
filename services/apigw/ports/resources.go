package ports

import (
	"net/http"
	"strconv"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/apigw/domain"
	"github.com/elbcloud/elb/services/apigw/readmodel"
	"github.com/gin-gonic/gin"
)

// show writes a resource the caller may see, or 404.
func show[V any](s *Server, c *gin.Context, kind, wrapper, id string, get func(string) (V, bool)) {
	if _, err := s.svc.Visible(cmdOf(c), kind, id); err != nil {
		fail(c, err)
		return
	}
	v, ok := get(id)
	if !ok {
		fail(c, domain.ErrNotFound)
		return
	}
	respondOne(c, http.StatusOK, wrapper, v)
}

// written answers a successful write with the resource as the read model
// now shows it.
func written[V any](c *gin.Context, status int, wrapper, id string, get func(string) (V, bool)) {
	v, ok := get(id)
	if !ok {
		fail(c, ErrLagging)
		return
	}
	respondOne(c, status, wrapper, v)
}

func (s *Server) m() *readmodel.Model { return s.svc.Model() }

// ---- load balancers ----

func (s *Server) listLBs(c *gin.Context) {
	cmd := cmdOf(c)
	withDeleted := false
	for _, v := range c.QueryArray("provisioning_status") {
		withDeleted = withDeleted || v == domain.StatusDeleted
	}
	items := s.m().LoadBalancers(cmd.ScopeProject(), withDeleted)
	respondList(c, "loadbalancers", items, func(v readmodel.LoadBalancer) string { return v.ID },
		func(v readmodel.LoadBalancer) []string { return v.Tags })
}

func (s *Server) getLB(c *gin.Context) {
	show(s, c, readmodel.KindLoadBalancer, "loadbalancer", c.Param("id"), s.m().LoadBalancer)
}

func (s *Server) createLB(c *gin.Context) {
	r, ok := decode[LoadBalancerReq](c, "loadbalancer")
	if !ok {
		return
	}
	cmd := cmdOf(c)
	spec := events.LoadBalancerSpec{AdminStateUp: true}
	if err := r.Apply(&spec, true); err != nil {
		fail(c, err)
		return
	}
	if err := checkProject(cmd, r.Project()); err != nil {
		fail(c, err)
		return
	}
	cmd.TargetProject = r.Project()
	id, err := s.svc.CreateLoadBalancer(c.Request.Context(), cmd, spec)
	if err != nil {
		fail(c, err)
		return
	}
	written(c, http.StatusCreated, "loadbalancer", id, s.m().LoadBalancer)
}

func (s *Server) updateLB(c *gin.Context) {
	r, ok := decode[LoadBalancerReq](c, "loadbalancer")
	if !ok {
		return
	}
	id := c.Param("id")
	err := s.svc.UpdateLoadBalancer(c.Request.Context(), cmdOf(c), id, func(spec *events.LoadBalancerSpec) error { return r.Apply(spec, false) })
	if err != nil {
		fail(c, err)
		return
	}
	written(c, http.StatusOK, "loadbalancer", id, s.m().LoadBalancer)
}

func (s *Server) deleteLB(c *gin.Context) {
	cascade := false
	if v := c.Query("cascade"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			fail(c, domain.Invalid("cascade", "%q is not a boolean", v))
			return
		}
		cascade = b
	}
	if err := s.svc.DeleteLoadBalancer(c.Request.Context(), cmdOf(c), c.Param("id"), cascade); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) lbStatus(c *gin.Context) {
	id := c.Param("id")
	if _, err := s.svc.Visible(cmdOf(c), readmodel.KindLoadBalancer, id); err != nil {
		fail(c, err)
		return
	}
	tree, ok := s.m().StatusTree(id)
	if !ok {
		fail(c, domain.ErrNotFound)
		return
	}
	c.JSON(http.StatusOK, gin.H{"statuses": gin.H{"loadbalancer": tree}})
}

func (s *Server) lbStats(c *gin.Context) {
	st, err := s.svc.LBStats(c.Request.Context(), cmdOf(c), c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"stats": st})
}

func (s *Server) failover(c *gin.Context) {
	if !s.adminOnly(c) {
		return
	}
	if err := s.svc.Failover(c.Request.Context(), cmdOf(c), c.Param("id")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusAccepted)
}

// ---- listeners ----

func (s *Server) listListeners(c *gin.Context) {
	respondList(c, "listeners", s.m().Listeners(cmdOf(c).ScopeProject()), func(v readmodel.Listener) string { return v.ID },
		func(v readmodel.Listener) []string { return v.Tags })
}

func (s *Server) getListener(c *gin.Context) {
	show(s, c, readmodel.KindListener, "listener", c.Param("id"), s.m().Listener)
}

func (s *Server) createListener(c *gin.Context) {
	r, ok := decode[ListenerReq](c, "listener")
	if !ok {
		return
	}
	spec := events.ListenerSpec{AdminStateUp: true, ConnectionLimit: -1, TimeoutClientData: 50000,
		TimeoutMemberConnect: 5000, TimeoutMemberData: 50000}
	if err := firstErr(r.Apply(&spec, true), checkProject(cmdOf(c), r.Project())); err != nil {
		fail(c, err)
		return
	}
	id, err := s.svc.CreateListener(c.Request.Context(), cmdOf(c), spec)
	if err != nil {
		fail(c, err)
		return
	}
	written(c, http.StatusCreated, "listener", id, s.m().Listener)
}

func (s *Server) updateListener(c *gin.Context) {
	r, ok := decode[ListenerReq](c, "listener")
	if !ok {
		return
	}
	id := c.Param("id")
	if err := s.svc.UpdateListener(c.Request.Context(), cmdOf(c), id, func(spec *events.ListenerSpec) error { return r.Apply(spec, false) }); err != nil {
		fail(c, err)
		return
	}
	written(c, http.StatusOK, "listener", id, s.m().Listener)
}

func (s *Server) deleteListener(c *gin.Context) {
	if err := s.svc.DeleteListener(c.Request.Context(), cmdOf(c), c.Param("id")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) listenerStats(c *gin.Context) {
	st, err := s.svc.ListenerStats(c.Request.Context(), cmdOf(c), c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"stats": st})
}

// ---- pools ----

func (s *Server) listPools(c *gin.Context) {
	respondList(c, "pools", s.m().Pools(cmdOf(c).ScopeProject()), func(v readmodel.Pool) string { return v.ID },
		func(v readmodel.Pool) []string { return v.Tags })
}

func (s *Server) getPool(c *gin.Context) {
	show(s, c, readmodel.KindPool, "pool", c.Param("id"), s.m().Pool)
}

func (s *Server) createPool(c *gin.Context) {
	r, ok := decode[PoolReq](c, "pool")
	if !ok {
		return
	}
	spec := events.PoolSpec{AdminStateUp: true}
	if err := firstErr(r.Apply(&spec, true), checkProject(cmdOf(c), r.Project())); err != nil {
		fail(c, err)
		return
	}
	id, err := s.svc.CreatePool(c.Request.Context(), cmdOf(c), spec)
	if err != nil {
		fail(c, err)
		return
	}
	written(c, http.StatusCreated, "pool", id, s.m().Pool)
}

func (s *Server) updatePool(c *gin.Context) {
	r, ok := decode[PoolReq](c, "pool")
	if !ok {
		return
	}
	id := c.Param("id")
	if err := s.svc.UpdatePool(c.Request.Context(), cmdOf(c), id, func(spec *events.PoolSpec) error { return r.Apply(spec, false) }); err != nil {
		fail(c, err)
		return
	}
	written(c, http.StatusOK, "pool", id, s.m().Pool)
}

func (s *Server) deletePool(c *gin.Context) {
	if err := s.svc.DeletePool(c.Request.Context(), cmdOf(c), c.Param("id")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// ---- members ----

func (s *Server) listMembers(c *gin.Context) {
	cmd := cmdOf(c)
	pool := c.Param("id")
	if _, err := s.svc.Visible(cmd, readmodel.KindPool, pool); err != nil {
		fail(c, err)
		return
	}
	respondList(c, "members", s.m().Members(cmd.ScopeProject(), pool), func(v readmodel.Member) string { return v.ID },
		func(v readmodel.Member) []string { return v.Tags })
}

func (s *Server) memberOf(c *gin.Context) (string, bool) {
	if _, err := s.svc.Visible(cmdOf(c), readmodel.KindPool, c.Param("id")); err != nil {
		fail(c, err)
		return "", false
	}
	id := c.Param("mid")
	if v, ok := s.m().Member(id); ok && v.PoolID != c.Param("id") {
		fail(c, domain.ErrNotFound)
		return "", false
	}
	return id, true
}

func (s *Server) getMember(c *gin.Context) {
	if id, ok := s.memberOf(c); ok {
		show(s, c, readmodel.KindMember, "member", id, s.m().Member)
	}
}

func newMember() events.MemberSpec { return events.MemberSpec{Weight: 1, AdminStateUp: true} }

func (s *Server) createMember(c *gin.Context) {
	r, ok := decode[MemberReq](c, "member")
	if !ok {
		return
	}
	spec := newMember()
	spec.PoolID = c.Param("id")
	if err := firstErr(r.Apply(&spec, true), checkProject(cmdOf(c), r.Project())); err != nil {
		fail(c, err)
		return
	}
	id, err := s.svc.CreateMember(c.Request.Context(), cmdOf(c), spec)
	if err != nil {
		fail(c, err)
		return
	}
	written(c, http.StatusCreated, "member", id, s.m().Member)
}

func (s *Server) updateMember(c *gin.Context) {
	id, ok := s.memberOf(c)
	if !ok {
		return
	}
	r, ok := decode[MemberReq](c, "member")
	if !ok {
		return
	}
	if err := s.svc.UpdateMember(c.Request.Context(), cmdOf(c), c.Param("id"), id, func(spec *events.MemberSpec) error { return r.Apply(spec, false) }); err != nil {
		fail(c, err)
		return
	}
	written(c, http.StatusOK, "member", id, s.m().Member)
}

func (s *Server) deleteMember(c *gin.Context) {
	id, ok := s.memberOf(c)
	if !ok {
		return
	}
	if err := s.svc.DeleteMember(c.Request.Context(), cmdOf(c), c.Param("id"), id); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// MaxBatchMembers bounds one batch update.
const MaxBatchMembers = 1000

func (s *Server) batchMembers(c *gin.Context) {
	rs, ok := decode[[]MemberReq](c, "members")
	if !ok {
		return
	}
	if len(*rs) > MaxBatchMembers {
		fail(c, domain.Invalid("members", "more than %d members", MaxBatchMembers))
		return
	}
	pool := c.Param("id")
	specs := make([]events.MemberSpec, 0, len(*rs))
	for i := range *rs {
		r := &(*rs)[i]
		spec := newMember()
		spec.PoolID = pool
		if err := firstErr(r.Apply(&spec, true), checkProject(cmdOf(c), r.Project())); err != nil {
			fail(c, err)
			return
		}
		specs = append(specs, spec)
	}
	if err := s.svc.BatchMembers(c.Request.Context(), cmdOf(c), pool, specs); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusAccepted)
}

// ---- health monitors ----

func (s *Server) listMonitors(c *gin.Context) {
	respondList(c, "healthmonitors", s.m().HealthMonitors(cmdOf(c).ScopeProject()), func(v readmodel.HealthMonitor) string { return v.ID },
		func(v readmodel.HealthMonitor) []string { return v.Tags })
}

func (s *Server) getMonitor(c *gin.Context) {
	show(s, c, readmodel.KindHealthMonitor, "healthmonitor", c.Param("id"), s.m().HealthMonitor)
}

func (s *Server) createMonitor(c *gin.Context) {
	r, ok := decode[MonitorReq](c, "healthmonitor")
	if !ok {
		return
	}
	spec := events.HealthMonitorSpec{AdminStateUp: true, MaxRetriesDown: 3}
	if err := firstErr(r.Apply(&spec, true), checkProject(cmdOf(c), r.Project())); err != nil {
		fail(c, err)
		return
	}
	id, err := s.svc.CreateMonitor(c.Request.Context(), cmdOf(c), spec)
	if err != nil {
		fail(c, err)
		return
	}
	written(c, http.StatusCreated, "healthmonitor", id, s.m().HealthMonitor)
}

func (s *Server) updateMonitor(c *gin.Context) {
	r, ok := decode[MonitorReq](c, "healthmonitor")
	if !ok {
		return
	}
	id := c.Param("id")
	if err := s.svc.UpdateMonitor(c.Request.Context(), cmdOf(c), id, func(spec *events.HealthMonitorSpec) error { return r.Apply(spec, false) }); err != nil {
		fail(c, err)
		return
	}
	written(c, http.StatusOK, "healthmonitor", id, s.m().HealthMonitor)
}

func (s *Server) deleteMonitor(c *gin.Context) {
	if err := s.svc.DeleteMonitor(c.Request.Context(), cmdOf(c), c.Param("id")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// ---- L7 policies and rules ----

func (s *Server) listPolicies(c *gin.Context) {
	respondList(c, "l7policies", s.m().L7Policies(cmdOf(c).ScopeProject()), func(v readmodel.L7Policy) string { return v.ID },
		func(v readmodel.L7Policy) []string { return v.Tags })
}

func (s *Server) getPolicy(c *gin.Context) {
	show(s, c, readmodel.KindL7Policy, "l7policy", c.Param("id"), s.m().L7Policy)
}

func (s *Server) createPolicy(c *gin.Context) {
	r, ok := decode[PolicyReq](c, "l7policy")
	if !ok {
		return
	}
	spec := events.L7PolicySpec{AdminStateUp: true}
	if err := firstErr(r.Apply(&spec, true), checkProject(cmdOf(c), r.Project())); err != nil {
		fail(c, err)
		return
	}
	id, err := s.svc.CreatePolicy(c.Request.Context(), cmdOf(c), spec)
	if err != nil {
		fail(c, err)
		return
	}
	written(c, http.StatusCreated, "l7policy", id, s.m().L7Policy)
}

func (s *Server) updatePolicy(c *gin.Context) {
	r, ok := decode[PolicyReq](c, "l7policy")
	if !ok {
		return
	}
	id := c.Param("id")
	if err := s.svc.UpdatePolicy(c.Request.Context(), cmdOf(c), id, func(spec *events.L7PolicySpec) error { return r.Apply(spec, false) }); err != nil {
		fail(c, err)
		return
	}
	written(c, http.StatusOK, "l7policy", id, s.m().L7Policy)
}

func (s *Server) deletePolicy(c *gin.Context) {
	if err := s.svc.DeletePolicy(c.Request.Context(), cmdOf(c), c.Param("id")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) listRules(c *gin.Context) {
	cmd := cmdOf(c)
	pol := c.Param("id")
	if _, err := s.svc.Visible(cmd, readmodel.KindL7Policy, pol); err != nil {
		fail(c, err)
		return
	}
	respondList(c, "rules", s.m().L7Rules(cmd.ScopeProject(), pol), func(v readmodel.L7Rule) string { return v.ID },
		func(v readmodel.L7Rule) []string { return v.Tags })
}

func (s *Server) ruleOf(c *gin.Context) (string, bool) {
	if _, err := s.svc.Visible(cmdOf(c), readmodel.KindL7Policy, c.Param("id")); err != nil {
		fail(c, err)
		return "", false
	}
	id := c.Param("rid")
	if p := s.m().RulePolicy(id); p != "" && p != c.Param("id") {
		fail(c, domain.ErrNotFound)
		return "", false
	}
	return id, true
}

func (s *Server) getRule(c *gin.Context) {
	if id, ok := s.ruleOf(c); ok {
		show(s, c, readmodel.KindL7Rule, "rule", id, s.m().L7Rule)
	}
}

func (s *Server) createRule(c *gin.Context) {
	r, ok := decode[RuleReq](c, "rule")
	if !ok {
		return
	}
	spec := events.L7RuleSpec{AdminStateUp: true, L7PolicyID: c.Param("id")}
	if err := firstErr(r.Apply(&spec, true), checkProject(cmdOf(c), r.Project())); err != nil {
		fail(c, err)
		return
	}
	id, err := s.svc.CreateRule(c.Request.Context(), cmdOf(c), spec)
	if err != nil {
		fail(c, err)
		return
	}
	written(c, http.StatusCreated, "rule", id, s.m().L7Rule)
}

func (s *Server) updateRule(c *gin.Context) {
	id, ok := s.ruleOf(c)
	if !ok {
		return
	}
	r, ok := decode[RuleReq](c, "rule")
	if !ok {
		return
	}
	if err := s.svc.UpdateRule(c.Request.Context(), cmdOf(c), c.Param("id"), id, func(spec *events.L7RuleSpec) error { return r.Apply(spec, false) }); err != nil {
		fail(c, err)
		return
	}
	written(c, http.StatusOK, "rule", id, s.m().L7Rule)
}

func (s *Server) deleteRule(c *gin.Context) {
	id, ok := s.ruleOf(c)
	if !ok {
		return
	}
	if err := s.svc.DeleteRule(c.Request.Context(), cmdOf(c), c.Param("id"), id); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// ---- quotas ----

func quotaBody(project string, q map[string]int) gin.H {
	return gin.H{"project_id": project, "loadbalancer": q["loadbalancer"], "load_balancer": q["loadbalancer"],
		"listener": q["listener"], "pool": q["pool"], "member": q["member"], "healthmonitor": q["healthmonitor"],
		"health_monitor": q["healthmonitor"], "l7policy": q["l7policy"], "l7rule": q["l7rule"]}
}

func (s *Server) listQuotas(c *gin.Context) {
	out := []gin.H{}
	for p, q := range s.svc.ListQuotas(cmdOf(c)) {
		out = append(out, quotaBody(p, q))
	}
	c.JSON(http.StatusOK, gin.H{"quotas": out, "quotas_links": []any{}})
}

func (s *Server) getQuota(c *gin.Context) {
	p := c.Param("project")
	if p == "defaults" {
		c.JSON(http.StatusOK, gin.H{"quota": quotaBody("", s.svc.DefaultQuotas())})
		return
	}
	q, err := s.svc.GetQuota(cmdOf(c), p)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"quota": quotaBody(p, q)})
}

func (s *Server) setQuota(c *gin.Context) {
	if !s.adminOnly(c) {
		return
	}
	r, ok := decode[QuotaReq](c, "quota")
	if !ok {
		return
	}
	p := c.Param("project")
	if err := s.svc.SetQuota(c.Request.Context(), cmdOf(c), p, r.Map()); err != nil {
		fail(c, err)
		return
	}
	q, _ := s.svc.GetQuota(cmdOf(c), p)
	c.JSON(http.StatusAccepted, gin.H{"quota": quotaBody(p, q)})
}

func (s *Server) resetQuota(c *gin.Context) {
	if !s.adminOnly(c) {
		return
	}
	if err := s.svc.ResetQuota(c.Request.Context(), cmdOf(c), c.Param("project")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
