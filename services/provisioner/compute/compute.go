// Package compute is the provisioner's port to whatever runs tengine nodes:
// Nova VMs in production, agent processes on this machine in the
// single-machine mode. Both implementations pass computetest's contract.
package compute

import (
	"context"
	"errors"
)

// ErrNotReady is wrapped when a node did not become ready (the boot failed or
// its deadline passed).
var ErrNotReady = errors.New("node not ready")

// ErrInvalidSpec is wrapped for a node spec a driver cannot build.
var ErrInvalidSpec = errors.New("invalid node spec")

// Spec is what the workflow asks for.
type Spec struct {
	NodeID           string
	Role             string // events.RoleTengine
	Flavor           string
	Image            string
	AvailabilityZone string
}

// Node is a node that exists.
type Node struct {
	ID       string
	ServerID string
	Address  string
	// Ready is false while the node is still booting (List only).
	Ready bool
}

// Driver builds and removes nodes. Every method is idempotent per node id:
// Create for an id that exists returns that node (it never builds a second
// one), Delete of a node that is gone succeeds.
type Driver interface {
	// Create makes the node and blocks until it is ready or ctx ends (the
	// caller sets the deadline). On failure the node may still exist; the
	// caller deletes it.
	Create(ctx context.Context, spec Spec) (Node, error)
	// Delete removes the node and blocks until it is gone.
	Delete(ctx context.Context, nodeID string) error
	// List returns every node the driver manages.
	List(ctx context.Context) ([]Node, error)
}

// Recoverer is implemented by drivers that must bring their nodes back after
// the provisioner restarts (the local driver re-spawns agent processes that
// died with the previous run).
type Recoverer interface {
	Recover(ctx context.Context) error
}
