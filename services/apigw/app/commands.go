package app

import (
	"context"
	"fmt"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/apigw/auth"
	"github.com/elbcloud/elb/services/apigw/domain"
	"github.com/elbcloud/elb/services/apigw/readmodel"
)

// checkQuota fails when adding n resources of kind would exceed the
// project's quota. Counts come from the read model, so concurrent creates
// in the same project may overshoot by the number in flight (documented in
// docs/decisions/0402-apigw-quotas.md).
func (s *Service) checkQuota(project, kind string, n int) error {
	limit := s.EffectiveQuota(project)[kind]
	if limit < 0 {
		return nil
	}
	if have := s.model.Count(project, kind); have+n > limit {
		return fmt.Errorf("project %s has %d of %d %s resources: %w", project, have, limit, kind, ErrQuotaExceeded)
	}
	return nil
}

// CreateLoadBalancer requests a new load balancer and returns its id.
func (s *Service) CreateLoadBalancer(ctx context.Context, c Cmd, spec events.LoadBalancerSpec) (string, error) {
	if err := s.canWrite(c); err != nil {
		return "", err
	}
	if c.TargetProject != "" && c.TargetProject != c.P.Project && !c.Admin {
		return "", fmt.Errorf("project_id %s is not yours: %w", c.TargetProject, auth.ErrForbidden)
	}
	if err := domain.ValidateLoadBalancer(spec); err != nil {
		return "", err
	}
	id := s.resourceID(c)
	err := s.exec(ctx, c, id, func(lb *domain.LoadBalancer) ([]any, error) {
		if lb.Version() > 0 && c.IdempotencyKey != "" {
			return nil, nil
		}
		if err := s.checkQuota(c.target(), readmodel.KindLoadBalancer, 1); err != nil {
			return nil, err
		}
		return lb.Request(spec, s.deadline())
	})
	return id, err
}

// UpdateLoadBalancer changes a load balancer's own fields.
func (s *Service) UpdateLoadBalancer(ctx context.Context, c Cmd, id string, patch func(*events.LoadBalancerSpec) error) error {
	if err := s.canWrite(c); err != nil {
		return err
	}
	if _, err := s.owned(c, readmodel.KindLoadBalancer, id); err != nil {
		return err
	}
	return s.exec(ctx, c, id, func(lb *domain.LoadBalancer) ([]any, error) {
		spec := lb.Spec()
		if err := patch(&spec); err != nil {
			return nil, err
		}
		return lb.Update(spec)
	})
}

// DeleteLoadBalancer starts the delete workflow.
func (s *Service) DeleteLoadBalancer(ctx context.Context, c Cmd, id string, cascade bool) error {
	if err := s.canWrite(c); err != nil {
		return err
	}
	if _, err := s.owned(c, readmodel.KindLoadBalancer, id); err != nil {
		return err
	}
	return s.exec(ctx, c, id, func(lb *domain.LoadBalancer) ([]any, error) {
		return lb.Delete(cascade, s.deadline())
	})
}

// Failover replaces every node of a load balancer (admin only).
func (s *Service) Failover(ctx context.Context, c Cmd, id string) error {
	if !c.Admin {
		return fmt.Errorf("failover is an admin action: %w", auth.ErrForbidden)
	}
	if _, err := s.owned(c, readmodel.KindLoadBalancer, id); err != nil {
		return err
	}
	return s.exec(ctx, c, id, func(lb *domain.LoadBalancer) ([]any, error) {
		return lb.Failover(s.deadline())
	})
}

// createChild runs a create command for a child resource of lbID.
func (s *Service) createChild(ctx context.Context, c Cmd, lbID, kind string, exists func(*domain.LoadBalancer, string) bool,
	decide func(lb *domain.LoadBalancer, id string) ([]any, error)) (string, error) {
	id := s.resourceID(c)
	err := s.exec(ctx, c, lbID, func(lb *domain.LoadBalancer) ([]any, error) {
		if c.IdempotencyKey != "" && exists(lb, id) {
			return nil, nil
		}
		if err := s.checkQuota(lb.Project(), kind, 1); err != nil {
			return nil, err
		}
		return decide(lb, id)
	})
	return id, err
}

// CreateListener adds a listener to a load balancer.
func (s *Service) CreateListener(ctx context.Context, c Cmd, spec events.ListenerSpec) (string, error) {
	if err := s.canWrite(c); err != nil {
		return "", err
	}
	lbID, err := s.owned(c, readmodel.KindLoadBalancer, spec.LoadBalancerID)
	if err != nil {
		return "", err
	}
	return s.createChild(ctx, c, lbID, readmodel.KindListener,
		func(lb *domain.LoadBalancer, id string) bool { _, ok := lb.Listener(id); return ok },
		func(lb *domain.LoadBalancer, id string) ([]any, error) { return lb.CreateListener(id, spec) })
}

// UpdateListener changes a listener.
func (s *Service) UpdateListener(ctx context.Context, c Cmd, id string, patch func(*events.ListenerSpec) error) error {
	if err := s.canWrite(c); err != nil {
		return err
	}
	lbID, err := s.owned(c, readmodel.KindListener, id)
	if err != nil {
		return err
	}
	return s.exec(ctx, c, lbID, func(lb *domain.LoadBalancer) ([]any, error) {
		spec, ok := lb.Listener(id)
		if !ok {
			return nil, fmt.Errorf("listener %s: %w", id, domain.ErrNotFound)
		}
		if err := patch(&spec); err != nil {
			return nil, err
		}
		return lb.UpdateListener(id, spec)
	})
}

// DeleteListener removes a listener.
func (s *Service) DeleteListener(ctx context.Context, c Cmd, id string) error {
	return s.deleteChild(ctx, c, readmodel.KindListener, id, func(lb *domain.LoadBalancer) ([]any, error) { return lb.DeleteListener(id) })
}

func (s *Service) deleteChild(ctx context.Context, c Cmd, kind, id string, decide func(*domain.LoadBalancer) ([]any, error)) error {
	if err := s.canWrite(c); err != nil {
		return err
	}
	lbID, err := s.owned(c, kind, id)
	if err != nil {
		return err
	}
	return s.exec(ctx, c, lbID, decide)
}

// CreatePool adds a pool to a load balancer (or to a listener's load balancer).
func (s *Service) CreatePool(ctx context.Context, c Cmd, spec events.PoolSpec) (string, error) {
	if err := s.canWrite(c); err != nil {
		return "", err
	}
	var lbID string
	var err error
	switch {
	case spec.ListenerID != "":
		lbID, err = s.owned(c, readmodel.KindListener, spec.ListenerID)
		if err == nil && spec.LoadBalancerID != "" && spec.LoadBalancerID != lbID {
			err = domain.Invalid("loadbalancer_id", "listener %s belongs to another load balancer", spec.ListenerID)
		}
	case spec.LoadBalancerID != "":
		lbID, err = s.owned(c, readmodel.KindLoadBalancer, spec.LoadBalancerID)
	default:
		err = domain.Invalid("loadbalancer_id", "a pool needs a listener_id or a loadbalancer_id")
	}
	if err != nil {
		return "", err
	}
	return s.createChild(ctx, c, lbID, readmodel.KindPool,
		func(lb *domain.LoadBalancer, id string) bool { _, ok := lb.Pool(id); return ok },
		func(lb *domain.LoadBalancer, id string) ([]any, error) { return lb.CreatePool(id, spec) })
}

// UpdatePool changes a pool.
func (s *Service) UpdatePool(ctx context.Context, c Cmd, id string, patch func(*events.PoolSpec) error) error {
	if err := s.canWrite(c); err != nil {
		return err
	}
	lbID, err := s.owned(c, readmodel.KindPool, id)
	if err != nil {
		return err
	}
	return s.exec(ctx, c, lbID, func(lb *domain.LoadBalancer) ([]any, error) {
		spec, ok := lb.Pool(id)
		if !ok {
			return nil, fmt.Errorf("pool %s: %w", id, domain.ErrNotFound)
		}
		if err := patch(&spec); err != nil {
			return nil, err
		}
		return lb.UpdatePool(id, spec)
	})
}

// DeletePool removes a pool with its members and monitor.
func (s *Service) DeletePool(ctx context.Context, c Cmd, id string) error {
	return s.deleteChild(ctx, c, readmodel.KindPool, id, func(lb *domain.LoadBalancer) ([]any, error) { return lb.DeletePool(id) })
}

// CreateMember adds a member to a pool.
func (s *Service) CreateMember(ctx context.Context, c Cmd, spec events.MemberSpec) (string, error) {
	if err := s.canWrite(c); err != nil {
		return "", err
	}
	lbID, err := s.owned(c, readmodel.KindPool, spec.PoolID)
	if err != nil {
		return "", err
	}
	return s.createChild(ctx, c, lbID, readmodel.KindMember,
		func(lb *domain.LoadBalancer, id string) bool { _, ok := lb.Member(id); return ok },
		func(lb *domain.LoadBalancer, id string) ([]any, error) { return lb.CreateMember(id, spec) })
}

// UpdateMember changes a member of a pool.
func (s *Service) UpdateMember(ctx context.Context, c Cmd, poolID, id string, patch func(*events.MemberSpec) error) error {
	if err := s.canWrite(c); err != nil {
		return err
	}
	lbID, err := s.owned(c, readmodel.KindMember, id)
	if err != nil {
		return err
	}
	return s.exec(ctx, c, lbID, func(lb *domain.LoadBalancer) ([]any, error) {
		spec, ok := lb.Member(id)
		if !ok || spec.PoolID != poolID {
			return nil, fmt.Errorf("member %s: %w", id, domain.ErrNotFound)
		}
		if err := patch(&spec); err != nil {
			return nil, err
		}
		return lb.UpdateMember(id, spec)
	})
}

// DeleteMember removes a member from a pool.
func (s *Service) DeleteMember(ctx context.Context, c Cmd, poolID, id string) error {
	return s.deleteChild(ctx, c, readmodel.KindMember, id, func(lb *domain.LoadBalancer) ([]any, error) { return lb.DeleteMember(poolID, id) })
}

// BatchMembers replaces a pool's member list (Octavia batch update).
func (s *Service) BatchMembers(ctx context.Context, c Cmd, poolID string, specs []events.MemberSpec) error {
	if err := s.canWrite(c); err != nil {
		return err
	}
	lbID, err := s.owned(c, readmodel.KindPool, poolID)
	if err != nil {
		return err
	}
	return s.exec(ctx, c, lbID, func(lb *domain.LoadBalancer) ([]any, error) {
		n := 0
		out, err := lb.BatchMembers(poolID, specs, func() string {
			n++
			return s.resourceID(Cmd{P: c.P, IdempotencyKey: c.IdempotencyKey, Scope: fmt.Sprintf("%s#%d", c.Scope, n)})
		})
		if err != nil {
			return nil, err
		}
		added, removed := 0, 0
		for _, e := range out {
			switch e.(type) {
			case *events.MemberAdded:
				added++
			case *events.MemberRemoved:
				removed++
			}
		}
		if added > removed {
			if err := s.checkQuota(lb.Project(), readmodel.KindMember, added-removed); err != nil {
				return nil, err
			}
		}
		return out, nil
	})
}

// CreateMonitor adds a pool's health monitor.
func (s *Service) CreateMonitor(ctx context.Context, c Cmd, spec events.HealthMonitorSpec) (string, error) {
	if err := s.canWrite(c); err != nil {
		return "", err
	}
	lbID, err := s.owned(c, readmodel.KindPool, spec.PoolID)
	if err != nil {
		return "", err
	}
	return s.createChild(ctx, c, lbID, readmodel.KindHealthMonitor,
		func(lb *domain.LoadBalancer, id string) bool { _, ok := lb.Monitor(id); return ok },
		func(lb *domain.LoadBalancer, id string) ([]any, error) { return lb.CreateMonitor(id, spec) })
}

// UpdateMonitor changes a health monitor.
func (s *Service) UpdateMonitor(ctx context.Context, c Cmd, id string, patch func(*events.HealthMonitorSpec) error) error {
	if err := s.canWrite(c); err != nil {
		return err
	}
	lbID, err := s.owned(c, readmodel.KindHealthMonitor, id)
	if err != nil {
		return err
	}
	return s.exec(ctx, c, lbID, func(lb *domain.LoadBalancer) ([]any, error) {
		spec, ok := lb.Monitor(id)
		if !ok {
			return nil, fmt.Errorf("healthmonitor %s: %w", id, domain.ErrNotFound)
		}
		if err := patch(&spec); err != nil {
			return nil, err
		}
		return lb.UpdateMonitor(id, spec)
	})
}

// DeleteMonitor removes a health monitor.
func (s *Service) DeleteMonitor(ctx context.Context, c Cmd, id string) error {
	return s.deleteChild(ctx, c, readmodel.KindHealthMonitor, id, func(lb *domain.LoadBalancer) ([]any, error) { return lb.DeleteMonitor(id) })
}

// CreatePolicy adds an L7 policy to a listener.
func (s *Service) CreatePolicy(ctx context.Context, c Cmd, spec events.L7PolicySpec) (string, error) {
	if err := s.canWrite(c); err != nil {
		return "", err
	}
	lbID, err := s.owned(c, readmodel.KindListener, spec.ListenerID)
	if err != nil {
		return "", err
	}
	return s.createChild(ctx, c, lbID, readmodel.KindL7Policy,
		func(lb *domain.LoadBalancer, id string) bool { _, ok := lb.Policy(id); return ok },
		func(lb *domain.LoadBalancer, id string) ([]any, error) { return lb.SetPolicy(id, spec, true) })
}

// UpdatePolicy changes an L7 policy.
func (s *Service) UpdatePolicy(ctx context.Context, c Cmd, id string, patch func(*events.L7PolicySpec) error) error {
	if err := s.canWrite(c); err != nil {
		return err
	}
	lbID, err := s.owned(c, readmodel.KindL7Policy, id)
	if err != nil {
		return err
	}
	return s.exec(ctx, c, lbID, func(lb *domain.LoadBalancer) ([]any, error) {
		spec, ok := lb.Policy(id)
		if !ok {
			return nil, fmt.Errorf("l7policy %s: %w", id, domain.ErrNotFound)
		}
		if err := patch(&spec); err != nil {
			return nil, err
		}
		return lb.SetPolicy(id, spec, false)
	})
}

// DeletePolicy removes an L7 policy.
func (s *Service) DeletePolicy(ctx context.Context, c Cmd, id string) error {
	return s.deleteChild(ctx, c, readmodel.KindL7Policy, id, func(lb *domain.LoadBalancer) ([]any, error) { return lb.DeletePolicy(id) })
}

// CreateRule adds a rule to an L7 policy.
func (s *Service) CreateRule(ctx context.Context, c Cmd, spec events.L7RuleSpec) (string, error) {
	if err := s.canWrite(c); err != nil {
		return "", err
	}
	lbID, err := s.owned(c, readmodel.KindL7Policy, spec.L7PolicyID)
	if err != nil {
		return "", err
	}
	return s.createChild(ctx, c, lbID, readmodel.KindL7Rule,
		func(lb *domain.LoadBalancer, id string) bool { _, ok := lb.Rule(id); return ok },
		func(lb *domain.LoadBalancer, id string) ([]any, error) { return lb.SetRule(id, spec, true) })
}

// UpdateRule changes an L7 rule.
func (s *Service) UpdateRule(ctx context.Context, c Cmd, policyID, id string, patch func(*events.L7RuleSpec) error) error {
	if err := s.canWrite(c); err != nil {
		return err
	}
	lbID, err := s.owned(c, readmodel.KindL7Rule, id)
	if err != nil {
		return err
	}
	return s.exec(ctx, c, lbID, func(lb *domain.LoadBalancer) ([]any, error) {
		spec, ok := lb.Rule(id)
		if !ok || spec.L7PolicyID != policyID {
			return nil, fmt.Errorf("l7rule %s: %w", id, domain.ErrNotFound)
		}
		if err := patch(&spec); err != nil {
			return nil, err
		}
		return lb.SetRule(id, spec, false)
	})
}

// DeleteRule removes an L7 rule.
func (s *Service) DeleteRule(ctx context.Context, c Cmd, policyID, id string) error {
	return s.deleteChild(ctx, c, readmodel.KindL7Rule, id, func(lb *domain.LoadBalancer) ([]any, error) { return lb.DeleteRule(policyID, id) })
}
