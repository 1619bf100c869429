package app

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/eventstore"
	"github.com/elbcloud/elb/services/apigw/auth"
	"github.com/elbcloud/elb/services/apigw/domain"
	"github.com/elbcloud/elb/services/apigw/readmodel"
)

// MaxQuota bounds a quota value; -1 means unlimited.
const MaxQuota = 1 << 30

// DefaultQuotas returns the defaults (every kind present, -1 = unlimited).
func (s *Service) DefaultQuotas() map[string]int {
	out := map[string]int{}
	for _, k := range readmodel.Kinds {
		out[k] = -1
		if v, ok := s.opt.DefaultQuotas[k]; ok {
			out[k] = v
		}
	}
	return out
}

// EffectiveQuota is the project's quotas: explicit values over the defaults.
func (s *Service) EffectiveQuota(project string) map[string]int {
	out := s.DefaultQuotas()
	maps.Copy(out, s.model.Quota(project))
	return out
}

// GetQuota returns a project's quotas; a tenant sees only its own.
func (s *Service) GetQuota(c Cmd, project string) (map[string]int, error) {
	if !domain.ValidID(project) {
		return nil, domain.Invalid("project_id", "%q is not a valid project id", project)
	}
	if !c.Admin && project != c.P.Project {
		return nil, fmt.Errorf("quotas of project %s: %w", project, auth.ErrForbidden)
	}
	return s.EffectiveQuota(project), nil
}

// ListQuotas lists the projects with explicit quotas (admin: all; tenant: own).
func (s *Service) ListQuotas(c Cmd) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, p := range s.model.QuotaProjects() {
		if c.Admin || p == c.P.Project {
			out[p] = s.EffectiveQuota(p)
		}
	}
	return out
}

// ValidateQuotas checks quota values.
func ValidateQuotas(q map[string]int) error {
	for k, v := range q {
		known := false
		for _, kind := range readmodel.Kinds {
			known = known || kind == k
		}
		if !known {
			return domain.Invalid("quota", "unknown quota %q", k)
		}
		if v < -1 || v > MaxQuota {
			return domain.Invalid(k, "%d is not -1 (unlimited) or between 0 and %d", v, MaxQuota)
		}
	}
	return nil
}

// SetQuota sets some of a project's quotas (admin only).
func (s *Service) SetQuota(ctx context.Context, c Cmd, project string, q map[string]int) error {
	if !c.Admin {
		return fmt.Errorf("setting quotas is an admin action: %w", auth.ErrForbidden)
	}
	if !domain.ValidID(project) {
		return domain.Invalid("project_id", "%q is not a valid project id", project)
	}
	if err := ValidateQuotas(q); err != nil {
		return err
	}
	return s.appendQuota(ctx, c, project, &events.QuotaSet{Quotas: maps.Clone(q)})
}

// ResetQuota returns a project to the default quotas (admin only).
func (s *Service) ResetQuota(ctx context.Context, c Cmd, project string) error {
	if !c.Admin {
		return fmt.Errorf("resetting quotas is an admin action: %w", auth.ErrForbidden)
	}
	if !domain.ValidID(project) {
		return domain.Invalid("project_id", "%q is not a valid project id", project)
	}
	return s.appendQuota(ctx, c, project, &events.QuotaReset{})
}

func (s *Service) appendQuota(ctx context.Context, c Cmd, project string, payload any) error {
	for attempt := 0; attempt < 8; attempt++ {
		_, version, err := s.store.Load(ctx, events.AggQuota, project)
		if err != nil {
			return fmt.Errorf("load quota %s: %w", project, err)
		}
		e, err := events.New(events.AggQuota, project, payload, events.Meta{Actor: c.P.User, ProjectID: project, CorrelationID: c.CorrelationID})
		if err != nil {
			return err
		}
		res, err := s.store.Append(ctx, events.AggQuota, project, version, c.commandID(), e)
		if errors.Is(err, eventstore.ErrConcurrency) {
			continue
		}
		if err != nil {
			return fmt.Errorf("append quota %s: %w", project, err)
		}
		s.waitFor(ctx, res.Sequence)
		return nil
	}
	return fmt.Errorf("quota %s: %w", project, ErrBusy)
}
