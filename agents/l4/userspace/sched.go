package userspace

import (
	"hash/fnv"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/elbcloud/elb/agents/l4"
)

// backend is one destination. It outlives pool versions so that its active
// connection count survives a reconfiguration.
type backend struct {
	ap       netip.AddrPort
	active   atomic.Int64
	conns    atomic.Uint64
	bytesIn  atomic.Uint64 // client → backend
	bytesOut atomic.Uint64 // backend → client
}

// member is a backend with its weight in one pool version.
type member struct {
	b      *backend
	weight int
}

// pool is an immutable scheduling configuration plus the scheduler's small
// mutable state (round-robin cursor, smooth-wrr credits, persistence table).
type pool struct {
	sched   string
	persist int64    // seconds
	members []member // weight > 0 only: drained backends get no new connections
	table   []int    // sh/dh/mh lookup table of indexes into members

	mu      sync.Mutex
	next    int
	current []int                      // smooth wrr credits
	sticky  map[netip.Addr]stickyEntry // persistence
	now     func() int64               // unix seconds; replaced in tests
}

type stickyEntry struct {
	b       *backend
	expires int64
}

// tableSize is the size of the hash schedulers' lookup table; a prime, as
// maglev hashing requires.
const tableSize = 4093

func newPool(s l4.Service, backends map[netip.AddrPort]*backend, now func() int64) *pool {
	p := &pool{sched: s.Scheduler, persist: int64(s.Persistence), now: now}
	for _, d := range s.Destinations {
		if d.Weight > 0 {
			p.members = append(p.members, member{b: backends[d.AddrPort()], weight: d.Weight})
		}
	}
	p.current = make([]int, len(p.members))
	switch p.sched {
	case l4.SH, l4.DH:
		p.table = weightedTable(p.members, tableSize)
	case l4.MH:
		p.table = maglevTable(p.members, tableSize)
	}
	if p.persist > 0 {
		p.sticky = map[netip.Addr]stickyEntry{}
	}
	return p
}

// pick chooses a backend for a new connection from client to vip; nil when
// no backend has a positive weight.
func (p *pool) pick(client, vip netip.Addr) *backend {
	if len(p.members) == 0 {
		return nil
	}
	if p.sticky != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		now := p.now()
		if e, ok := p.sticky[client]; ok && e.expires > now && p.has(e.b) {
			e.expires = now + p.persist
			p.sticky[client] = e
			return e.b
		}
		b := p.pickLocked(client, vip)
		p.sticky[client] = stickyEntry{b: b, expires: now + p.persist}
		if len(p.sticky) > 1<<16 {
			for k, e := range p.sticky {
				if e.expires <= now {
					delete(p.sticky, k)
				}
			}
		}
		return b
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pickLocked(client, vip)
}

func (p *pool) has(b *backend) bool {
	for _, m := range p.members {
		if m.b == b {
			return true
		}
	}
	return false
}

// pickLocked runs the scheduler. p.mu must be held.
func (p *pool) pickLocked(client, vip netip.Addr) *backend {
	switch p.sched {
	case l4.RR:
		p.next = (p.next + 1) % len(p.members)
		return p.members[p.next].b
	case l4.WRR:
		// Smooth weighted round robin (as nginx): interleaves instead of
		// sending bursts to the heaviest backend.
		total, best := 0, 0
		for i, m := range p.members {
			p.current[i] += m.weight
			total += m.weight
			if p.current[i] > p.current[best] {
				best = i
			}
		}
		p.current[best] -= total
		return p.members[best].b
	case l4.LC, l4.WLC, l4.SED, l4.NQ:
		return p.leastLocked()
	case l4.SH, l4.MH:
		return p.members[p.table[hashAddr(client)%uint32(len(p.table))]].b
	case l4.DH:
		return p.members[p.table[hashAddr(vip)%uint32(len(p.table))]].b
	}
	return p.members[0].b
}

// leastLocked implements lc, wlc, sed and nq with IPVS's cost functions,
// comparing by cross-multiplication to stay in integers.
func (p *pool) leastLocked() *backend {
	cost := func(m member) (num int64, den int64) {
		a := m.b.active.Load()
		switch p.sched {
		case l4.LC:
			return a, 1
		case l4.WLC:
			return a, int64(m.weight)
		default: // sed, nq
			return a + 1, int64(m.weight)
		}
	}
	if p.sched == l4.NQ {
		// Never queue: an idle backend wins outright.
		for i := range p.members {
			j := (p.next + 1 + i) % len(p.members)
			if p.members[j].b.active.Load() == 0 {
				p.next = j
				return p.members[j].b
			}
		}
	}
	best := -1
	var bn, bd int64
	for i := range p.members {
		// Start after the last choice so that ties rotate.
		j := (p.next + 1 + i) % len(p.members)
		n, d := cost(p.members[j])
		if best < 0 || n*bd < bn*d {
			best, bn, bd = j, n, d
		}
	}
	p.next = best
	return p.members[best].b
}

func hashAddr(a netip.Addr) uint32 {
	h := fnv.New32a()
	b := a.As16()
	h.Write(b[:])
	return h.Sum32()
}

// weightedTable fills size slots in smooth-wrr order, so each backend owns
// a share of slots proportional to its weight (IPVS sh does the same with
// 256 buckets).
func weightedTable(members []member, size int) []int {
	t := make([]int, size)
	cur := make([]int, len(members))
	total := 0
	for _, m := range members {
		total += m.weight
	}
	for s := range t {
		best := 0
		for i, m := range members {
			cur[i] += m.weight
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		t[s] = best
	}
	return t
}

// maglevTable builds a Maglev lookup table (Eisenbud et al., NSDI 2016) with
// weights as IPVS mh does: a backend takes weight/gcd turns per round. A
// backend's slots move only when it (or a neighbour's weight) changes.
func maglevTable(members []member, size int) []int {
	n := len(members)
	offset, skip := make([]uint32, n), make([]uint32, n)
	g := 0
	for i, m := range members {
		k := m.b.ap.String()
		h1, h2 := fnv.New32a(), fnv.New32()
		h1.Write([]byte(k))
		h2.Write([]byte(k))
		offset[i] = h1.Sum32() % uint32(size)
		skip[i] = h2.Sum32()%uint32(size-1) + 1
		g = gcd(g, m.weight)
	}
	next := make([]uint32, n)
	t := make([]int, size)
	for i := range t {
		t[i] = -1
	}
	filled := 0
	for filled < size {
		for i, m := range members {
			for turn := 0; turn < m.weight/g && filled < size; turn++ {
				c := (offset[i] + next[i]*skip[i]) % uint32(size)
				for t[c] >= 0 {
					next[i]++
					c = (offset[i] + next[i]*skip[i]) % uint32(size)
				}
				t[c] = i
				next[i]++
				filled++
			}
		}
	}
	return t
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
