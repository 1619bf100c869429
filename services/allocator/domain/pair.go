package domain

import (
	"fmt"
	"sort"

	"github.com/elbcloud/elb/events"
)

// Pair is an LVS master/backup pair that can carry VIPs, as registered by
// LVSPairRegistered on its lvspair aggregate (the last registration wins).
type Pair struct {
	Name             string   `json:"name"`
	Nodes            []string `json:"nodes"`
	AvailabilityZone string   `json:"availability_zone,omitempty"`
	// Capacity is the most VIPs the pair carries; 0 is unlimited.
	Capacity int `json:"capacity,omitempty"`
}

// PairFromEvent converts a registration.
func PairFromEvent(e *events.LVSPairRegistered) Pair {
	return Pair{Name: e.Pair, Nodes: append([]string(nil), e.Nodes...), AvailabilityZone: e.AvailabilityZone, Capacity: e.Capacity}
}

// Validate checks a pair before it is registered.
func (p Pair) Validate() error {
	if !events.ValidToken(p.Name) {
		return fmt.Errorf("lvs pair: invalid name %q", p.Name)
	}
	if len(p.Nodes) == 0 {
		return fmt.Errorf("lvs pair %s: no nodes", p.Name)
	}
	for _, n := range p.Nodes {
		if !events.ValidToken(n) {
			return fmt.Errorf("lvs pair %s: invalid node id %q", p.Name, n)
		}
	}
	if p.Capacity < 0 {
		return fmt.Errorf("lvs pair %s: negative capacity", p.Name)
	}
	return nil
}

// ChoosePair places a VIP on the least-loaded pair of the zone (load is the
// number of VIPs a pair carries; ties go to the name that sorts first, so
// replicas agree). Pairs at capacity are skipped.
func ChoosePair(pairs []Pair, load map[string]int, az string) (Pair, error) {
	cands := make([]Pair, 0, len(pairs))
	for _, p := range pairs {
		if az != "" && p.AvailabilityZone != "" && p.AvailabilityZone != az {
			continue
		}
		if p.Capacity > 0 && load[p.Name] >= p.Capacity {
			continue
		}
		cands = append(cands, p)
	}
	if len(cands) == 0 {
		return Pair{}, fmt.Errorf("zone %q: %w", az, ErrNoLVSPair)
	}
	sort.Slice(cands, func(i, j int) bool {
		li, lj := load[cands[i].Name], load[cands[j].Name]
		if li != lj {
			return li < lj
		}
		return cands[i].Name < cands[j].Name
	})
	return cands[0], nil
}
