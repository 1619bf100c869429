// Package computetest is the contract every compute.Driver must meet, run
// against each implementation by its own tests.
package computetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/elbcloud/elb/services/provisioner/compute"
)

// Harness gives the suite a fresh driver and a way to look behind it.
type Harness struct {
	Driver compute.Driver
	// Exists reports whether the backend (process table, Nova) still has
	// the node.
	Exists func(nodeID string) bool
	// Break makes builds of node ids containing "broken" never get ready
	// (the local test agent exits; the fake Nova keeps the server in BUILD).
	Break func()
	// ReadyTimeout bounds a normal build in this backend.
	ReadyTimeout time.Duration
}

func ids(t *testing.T, d compute.Driver) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, err := d.List(ctx)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	var out []string
	for _, n := range nodes {
		out = append(out, n.ID)
	}
	return out
}

// Run runs the contract.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Run("CreateReturnsAReadyNodeAndIsIdempotent", func(t *testing.T) {
		h := newHarness(t)
		ctx, cancel := context.WithTimeout(context.Background(), h.ReadyTimeout)
		defer cancel()
		a, err := h.Driver.Create(ctx, compute.Spec{NodeID: "node-a"})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if !a.Ready || a.Address == "" || a.ServerID == "" || a.ID != "node-a" {
			t.Fatalf("created node = %+v", a)
		}
		again, err := h.Driver.Create(ctx, compute.Spec{NodeID: "node-a"})
		if err != nil {
			t.Fatalf("create again: %v", err)
		}
		if again.ServerID != a.ServerID || again.Address != a.Address {
			t.Fatalf("second create built another node: %+v vs %+v", again, a)
		}
		b, err := h.Driver.Create(ctx, compute.Spec{NodeID: "node-b"})
		if err != nil {
			t.Fatalf("create b: %v", err)
		}
		if b.Address == a.Address {
			t.Fatalf("two nodes share address %s", a.Address)
		}
		got := ids(t, h.Driver)
		if !slices.Contains(got, "node-a") || !slices.Contains(got, "node-b") || len(got) != 2 {
			t.Fatalf("list = %v, want node-a and node-b", got)
		}
		if !h.Exists("node-a") {
			t.Fatal("backend does not have node-a")
		}
	})
	t.Run("DeleteRemovesTheNodeAndIsIdempotent", func(t *testing.T) {
		h := newHarness(t)
		ctx, cancel := context.WithTimeout(context.Background(), h.ReadyTimeout+10*time.Second)
		defer cancel()
		if _, err := h.Driver.Create(ctx, compute.Spec{NodeID: "node-d"}); err != nil {
			t.Fatalf("create: %v", err)
		}
		if err := h.Driver.Delete(ctx, "node-d"); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if h.Exists("node-d") {
			t.Fatal("node still exists after delete")
		}
		if err := h.Driver.Delete(ctx, "node-d"); err != nil {
			t.Fatalf("second delete: %v", err)
		}
		if err := h.Driver.Delete(ctx, "never-created"); err != nil {
			t.Fatalf("delete of unknown node: %v", err)
		}
		if got := ids(t, h.Driver); len(got) != 0 {
			t.Fatalf("list after delete = %v", got)
		}
	})
	t.Run("ANodeThatNeverGetsReadyFailsAndCanBeDeleted", func(t *testing.T) {
		h := newHarness(t)
		h.Break()
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		_, err := h.Driver.Create(ctx, compute.Spec{NodeID: "node-broken"})
		cancel()
		if !errors.Is(err, compute.ErrNotReady) {
			t.Fatalf("create of a broken node: err = %v, want ErrNotReady", err)
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer dcancel()
		if err := h.Driver.Delete(dctx, "node-broken"); err != nil {
			t.Fatalf("delete broken node: %v", err)
		}
		if h.Exists("node-broken") {
			t.Fatal("broken node still exists")
		}
	})
	t.Run("InvalidNodeIDsAreRejected", func(t *testing.T) {
		h := newHarness(t)
		for _, id := range []string{"", "a.b", "a b", "a*"} {
			if _, err := h.Driver.Create(context.Background(), compute.Spec{NodeID: id}); !errors.Is(err, compute.ErrInvalidSpec) {
				t.Errorf("create %q: err = %v, want ErrInvalidSpec", id, err)
			}
		}
	})
}
