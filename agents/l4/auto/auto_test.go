package auto

import (
	"errors"
	"os"
	"testing"

	"github.com/elbcloud/elb/agents/l4/ipvs"
	"github.com/elbcloud/elb/agents/l4/nftables"
	"github.com/elbcloud/elb/agents/l4/userspace"
)

func TestOpenPicksTheFirstDriverThatCanRun(t *testing.T) {
	want := userspace.Name
	if os.Geteuid() == 0 {
		if nftables.Probe(nftables.Config{}) == nil {
			want = nftables.Name
		}
		if ipvs.Probe(ipvs.Config{}) == nil {
			t.Skip("this host has IPVS; auto would program the host's IPVS table")
		}
	}
	if want == nftables.Name {
		// Opening nftables touches nothing until Apply, so this is safe on
		// the host.
		t.Logf("expecting nftables (no IPVS here)")
	}
	d, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Name() != want {
		t.Fatalf("auto picked %s, want %s", d.Name(), want)
	}
}

func TestOpenHonoursTheConfiguredDriver(t *testing.T) {
	d, err := Open(Config{Driver: "userspace"})
	if err != nil || d.Name() != userspace.Name {
		t.Fatalf("Open(userspace) = %v, %v", d, err)
	}
	d.Close()
	if _, err := Open(Config{Driver: "bogus"}); !errors.Is(err, ErrUnknownDriver) {
		t.Fatalf("Open(bogus) err = %v", err)
	}
}
