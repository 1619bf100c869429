package builtin

import (
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/elbcloud/elb/agents/l7"
)

// member is one upstream; it survives config swaps (same id and address) so
// that connection counts and passive failure marks carry over.
type member struct {
	id     string
	host   string // ip:port
	weight int
	backup bool
	cookie string // HTTP_COOKIE value that pins a client to this member
	seed   uint64

	active      atomic.Int64
	failedUntil atomic.Int64 // unix nanos; passive mark after a connect error
}

// passiveFailTimeout is how long a member that refused a connection is
// skipped (nginx: max_fails=1 fail_timeout=10s).
const passiveFailTimeout = 10 * time.Second

var hashSeed = maphash.MakeSeed()

func newMember(m l7.Member) *member {
	host := m.Address + ":" + strconv.Itoa(m.Port)
	if len(m.Address) > 0 && containsColon(m.Address) {
		host = "[" + m.Address + "]:" + strconv.Itoa(m.Port)
	}
	w := m.Weight
	if w < 1 {
		w = 1
	}
	h := maphash.String(hashSeed, m.ID)
	return &member{id: m.ID, host: host, weight: w, backup: m.Backup, cookie: strconv.FormatUint(fnv64(m.ID), 16), seed: h}
}

func containsColon(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return true
		}
	}
	return false
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// pool is an immutable balancer over members (swapped whole on change).
type pool struct {
	alg        string
	sticky     string
	cookieName string
	primaries  []*member
	backups    []*member
	seq        []uint16 // smooth weighted round-robin order over primaries
	rr         atomic.Uint64
	byCookie   map[string]*member
}

// maxSeq bounds the precomputed weighted round-robin sequence.
const maxSeq = 4096

func newPool(l l7.Listener, old map[string]*member) *pool {
	p := &pool{alg: l.Algorithm, sticky: l.StickyType, cookieName: l.CookieName, byCookie: map[string]*member{}}
	for _, lm := range l.Members {
		m := newMember(lm)
		if o, ok := old[m.id+"@"+m.host]; ok && o.weight == m.weight && o.backup == m.backup {
			m = o
		}
		if m.backup {
			p.backups = append(p.backups, m)
		} else {
			p.primaries = append(p.primaries, m)
		}
		p.byCookie[m.cookie] = m
	}
	if len(p.primaries) == 0 {
		p.primaries, p.backups = p.backups, nil
	}
	p.seq = swrr(p.primaries)
	return p
}

// swrr returns nginx's smooth weighted round-robin order: weights 5,1,1 give
// a a b a c a a rather than a a a a a b c.
func swrr(ms []*member) []uint16 {
	if len(ms) == 0 {
		return nil
	}
	total := 0
	for _, m := range ms {
		total += m.weight
	}
	n := min(total, maxSeq)
	cur := make([]int, len(ms))
	seq := make([]uint16, 0, n)
	for len(seq) < n {
		best := -1
		for i, m := range ms {
			cur[i] += m.weight
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		seq = append(seq, uint16(best))
	}
	return seq
}

func (p *pool) members() map[string]*member {
	out := make(map[string]*member, len(p.primaries)+len(p.backups))
	for _, m := range p.primaries {
		out[m.id+"@"+m.host] = m
	}
	for _, m := range p.backups {
		out[m.id+"@"+m.host] = m
	}
	return out
}

// tried is the small set of members a request already failed on.
type tried struct {
	n  int
	ms [3]*member
}

func (t *tried) has(m *member) bool {
	for i := 0; i < t.n; i++ {
		if t.ms[i] == m {
			return true
		}
	}
	return false
}

func (t *tried) add(m *member) {
	if t.n < len(t.ms) {
		t.ms[t.n] = m
		t.n++
	}
}

// pick chooses a member for req, skipping tried ones; it prefers members
// without a passive failure mark, then backups, then anything left. It
// reports whether the client must get a stickiness cookie.
func (p *pool) pick(cookies, clientIP string, t *tried) (m *member, setCookie bool) {
	now := time.Now().UnixNano()
	for pass := 0; pass < 2; pass++ {
		ok := func(m *member) bool {
			return !t.has(m) && (pass == 1 || m.failedUntil.Load() < now)
		}
		switch {
		case p.sticky == l7.StickyHTTPCookie:
			if v := cookieValue(cookies, l7.InsertCookieName); v != "" {
				if m := p.byCookie[v]; m != nil && ok(m) {
					return m, false
				}
			}
			if m := p.roundRobin(p.primaries, ok); m != nil {
				return m, true
			}
		case p.sticky == l7.StickyAppCookie:
			key := cookieValue(cookies, p.cookieName)
			if key == "" {
				if m := p.roundRobin(p.primaries, ok); m != nil {
					return m, false
				}
			} else if m := hrw(p.primaries, key, ok); m != nil {
				return m, false
			}
		case p.sticky == l7.StickySourceIP || p.alg == l7.AlgSourceIP:
			if m := hrw(p.primaries, clientIP, ok); m != nil {
				return m, false
			}
		case p.alg == l7.AlgLeastConn:
			if m := p.leastConn(p.primaries, ok); m != nil {
				return m, false
			}
		default:
			if m := p.roundRobin(p.primaries, ok); m != nil {
				return m, false
			}
		}
		if m := p.leastConn(p.backups, ok); m != nil {
			return m, false
		}
	}
	return nil, false
}

// needsCookies reports whether pick looks at cookies.
func (p *pool) needsCookies() bool {
	return p.sticky == l7.StickyHTTPCookie || p.sticky == l7.StickyAppCookie
}

// cookieValue finds name in Cookie header values joined by "; ".
func cookieValue(header, name string) string {
	for header != "" {
		var part string
		part, header, _ = strings.Cut(header, ";")
		part = strings.TrimSpace(part)
		k, v, ok := strings.Cut(part, "=")
		if ok && k == name {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func (p *pool) roundRobin(ms []*member, ok func(*member) bool) *member {
	if len(p.seq) == 0 || len(ms) == 0 {
		return nil
	}
	start := p.rr.Add(1)
	for i := uint64(0); i < uint64(len(p.seq)); i++ {
		m := ms[p.seq[(start+i)%uint64(len(p.seq))]]
		if ok(m) {
			return m
		}
	}
	return nil
}

// leastConn picks the member with the fewest active requests per weight,
// starting at a rotating offset so that ties spread.
func (p *pool) leastConn(ms []*member, ok func(*member) bool) *member {
	if len(ms) == 0 {
		return nil
	}
	start := int(p.rr.Add(1) % uint64(len(ms)))
	var best *member
	var bestA int64
	for i := range ms {
		m := ms[(start+i)%len(ms)]
		if !ok(m) {
			continue
		}
		a := m.active.Load()
		if best == nil || a*int64(best.weight) < bestA*int64(m.weight) {
			best, bestA = m, a
		}
	}
	return best
}

// hrw is weighted rendezvous hashing: consistent (a removed member moves only
// its own keys) and weight-proportional.
func hrw(ms []*member, key string, ok func(*member) bool) *member {
	kh := maphash.String(hashSeed, key)
	var best *member
	bestScore := math.Inf(-1)
	for _, m := range ms {
		if !ok(m) {
			continue
		}
		h := mix(kh ^ m.seed)
		u := (float64(h>>11) + 0.5) / (1 << 53) // (0,1)
		score := -float64(m.weight) / math.Log(u)
		if score > bestScore {
			best, bestScore = m, score
		}
	}
	return best
}

func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
