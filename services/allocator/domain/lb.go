package domain

import "github.com/elbcloud/elb/events"

// LBView is what the allocator needs to know of a load balancer, folded from
// the load balancer aggregate's events.
type LBView struct {
	Version         uint64
	Exists          bool
	Spec            events.LoadBalancerSpec
	VIP             string // the VIPAllocated mirrored onto the load balancer
	AllocFailed     bool
	EverActive      bool
	Failed          bool
	DeleteRequested bool
	Deleted         bool
}

// Apply folds one load balancer event.
func (v *LBView) Apply(e events.Event) {
	v.Version = e.AggregateVersion
	switch d := e.Data.(type) {
	case *events.ELBRequested:
		v.Exists = true
		v.Spec = d.Spec
	case *events.VIPAllocated:
		v.VIP = d.Address
	case *events.AllocationFailed:
		v.AllocFailed = true
	case *events.ELBActive:
		v.EverActive = true
		v.Failed = false
	case *events.ELBFailed:
		v.Failed = true
	case *events.ELBDeleteRequested:
		v.DeleteRequested = true
	case *events.ELBDeleted:
		v.Deleted = true
	}
}

// Closed reports whether the load balancer may no longer get a VIP.
func (v *LBView) Closed() bool {
	return v.Deleted || v.DeleteRequested || v.Failed || v.AllocFailed
}

// MustRelease reports whether the load balancer's VIP goes back to its pool:
// after ELBDeleted, and after a create that failed and was rolled back (an
// ELBFailed before the load balancer was ever ACTIVE). A load balancer whose
// update failed keeps its VIP: it still serves its last good config.
func (v *LBView) MustRelease() bool {
	return v.Deleted || (v.Failed && !v.EverActive) || v.AllocFailed
}
