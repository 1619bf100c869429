// Package nftables is the L4 driver for kernels without IPVS: each virtual
// service is a DNAT through a named map in the agent's own table `ip elb`.
//
//	table ip elb
//	  chain prerouting  (nat, prerouting, dstnat)  ip daddr VIP tcp dport P goto svc_…
//	  chain output      (nat, output, dstnat)      the same, for clients on this node
//	  map   be_…        index → backend address . port (one element per weight share)
//	  chain svc_…       dnat to <numgen inc | numgen random | jhash ip saddr> mod N map @be_…
//
// Round robin and weights use `numgen inc` over a map in which every
// backend owns weight/gcd interleaved slots; least-connection schedulers,
// which nftables cannot count, use `numgen random` with the same weights;
// sh, mh and persistence use `jhash ip saddr` (affinity by client); dh uses
// `jhash ip daddr`. Destinations with weight 0 stay in the map at indexes
// beyond the modulus: they are never chosen (draining: conntrack keeps the
// established flows) but can be read back.
//
// Every sync is one atomic netlink transaction that deletes and rebuilds the
// whole table, so stale maps and chains can never survive; established
// connections keep their NAT binding in conntrack. Apply skips the
// transaction when what is read back already equals the desired state.
package nftables

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/elbcloud/elb/agents/l4"
)

// Name is the driver name.
const Name = "nftables"

// DefaultTable is the table the driver owns.
const DefaultTable = "elb"

// hashSeed is fixed so that every LVS node of a cluster hashes a client to
// the same backend.
const hashSeed = 0x454c4231 // "ELB1"

// maxSlots bounds the elements one service's map gets for its weights.
const maxSlots = 1024

// Config configures the driver.
type Config struct {
	// Table is the name of the driver's own `ip` table (default "elb").
	Table string
	// NetNS, when non-zero, is a network namespace file descriptor to
	// program instead of the current one.
	NetNS int
	Log   *slog.Logger
}

// Driver programs nftables.
type Driver struct {
	cfg Config
	log *slog.Logger
	mu  sync.Mutex
}

var _ l4.Driver = (*Driver)(nil)

func (c Config) conn() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if c.NetNS != 0 {
		opts = append(opts, nftables.WithNetNSFd(c.NetNS))
	}
	return nftables.New(opts...)
}

// Probe checks that this process can program NAT chains with nftables in
// the configured namespace, by creating and deleting a probe table with a
// nat chain in one transaction. The error says what is missing.
func Probe(cfg Config) error {
	c, err := cfg.conn()
	if err != nil {
		return fmt.Errorf("%w: nftables: netlink: %w", l4.ErrUnavailable, err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "elb_probe"})
	c.AddChain(&nftables.Chain{Name: "p", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("%w: nftables: permission denied (needs CAP_NET_ADMIN): %w", l4.ErrUnavailable, err)
		}
		return fmt.Errorf("%w: nftables: kernel refused a nat chain (nf_tables/nft_nat missing?): %w", l4.ErrUnavailable, err)
	}
	return nil
}

// New returns a driver after probing the kernel.
func New(cfg Config) (*Driver, error) {
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if err := Probe(cfg); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Driver{cfg: cfg, log: log.With("driver", Name, "table", cfg.Table)}, nil
}

// Name implements l4.Driver.
func (d *Driver) Name() string { return Name }

// Close implements l4.Driver. The table stays: traffic keeps flowing while
// the agent restarts.
func (d *Driver) Close() error { return nil }

// Remove deletes the driver's table (for tests and decommissioning).
func (d *Driver) Remove() error {
	c, err := d.cfg.conn()
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: d.cfg.Table})
	c.DelTable(t)
	return c.Flush()
}

// Apply implements l4.Driver.
func (d *Driver) Apply(ctx context.Context, desired l4.State) error {
	if err := desired.Validate(); err != nil {
		return err
	}
	for _, s := range desired.Services {
		if !s.VIP.Is4() {
			return fmt.Errorf("service %s: %w: ipv6 (the table is ip only)", s.Key(), l4.ErrUnsupported)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if got, err := d.observed(); err == nil && l4.Equal(got, desired) {
		return nil
	}
	c, err := d.cfg.conn()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	program(c, d.cfg.Table, l4.Normalize(desired))
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: apply %d services: %w", len(desired.Services), err)
	}
	d.log.Info("ruleset replaced", "services", len(desired.Services))
	return nil
}

// program queues the whole table into c's batch: create-if-missing, delete,
// create, so that the transaction works whether or not the table exists.
func program(c *nftables.Conn, table string, st l4.State) {
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: table}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	out := c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	for _, s := range st.Services {
		name := objName(s.Key())
		svcChain := c.AddChain(&nftables.Chain{Name: "svc_" + name, Table: t})
		set := &nftables.Set{Table: t, Name: "be_" + name, IsMap: true,
			KeyType: nftables.TypeMark, KeyByteOrder: binaryutil.NativeEndian,
			DataType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)}
		elems, modulus := elements(s)
		// AddSet only fails for anonymous non-constant sets, which this is not.
		_ = c.AddSet(set, elems)
		proto := protoNum(s.Protocol)
		for _, ch := range []*nftables.Chain{pre, out} {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, UserData: userdata.AppendString(nil, ruleComment, specComment(s)), Exprs: []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: s.VIP.AsSlice()},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(s.Port)},
				&expr.Counter{},
				&expr.Verdict{Kind: expr.VerdictGoto, Chain: svcChain.Name},
			}})
		}
		if modulus == 0 {
			// No destination with a positive weight: nothing to DNAT to;
			// the packet goes on unchanged (refused or dropped).
			continue
		}
		exprs := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		}
		switch selector(s) {
		case "inc":
			exprs = append(exprs, &expr.Numgen{Register: 1, Modulus: modulus, Type: unix.NFT_NG_INCREMENTAL})
		case "random":
			exprs = append(exprs, &expr.Numgen{Register: 1, Modulus: modulus, Type: unix.NFT_NG_RANDOM})
		case "saddr", "daddr":
			off := uint32(12)
			if selector(s) == "daddr" {
				off = 16
			}
			exprs = append(exprs,
				&expr.Payload{DestRegister: 2, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
				&expr.Hash{SourceRegister: 2, DestRegister: 1, Length: 4, Modulus: modulus, Seed: hashSeed, Type: expr.HashTypeJenkins})
		}
		exprs = append(exprs,
			&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: set.Name, SetID: set.ID},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9, Specified: true})
		c.AddRule(&nftables.Rule{Table: t, Chain: svcChain, Exprs: exprs})
	}
}

// selector says how a scheduler picks a map slot in nftables.
func selector(s l4.Service) string {
	switch {
	case s.Scheduler == l4.DH:
		return "daddr"
	case s.Scheduler == l4.SH || s.Scheduler == l4.MH || s.Persistence > 0:
		return "saddr"
	case s.Scheduler == l4.RR || s.Scheduler == l4.WRR:
		return "inc"
	default: // lc wlc sed nq: connection counts are not visible to nftables
		return "random"
	}
}

func protoNum(p l4.Protocol) byte {
	if p == l4.UDP {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

// objName names a service's chain and map: "tcp_198_18_2_10_80".
func objName(k l4.Key) string {
	return fmt.Sprintf("%s_%s_%d", k.Protocol, strings.ReplaceAll(k.VIP.String(), ".", "_"), k.Port)
}

// ruleComment is libnftnl's NFTNL_UDATA_RULE_COMMENT.
const ruleComment userdata.Type = 0

// specComment is what Observed reads back: "tcp 198.18.2.10:80 rr 0 nat".
func specComment(s l4.Service) string {
	return fmt.Sprintf("%s %s %s %d %s", s.Protocol, netip.AddrPortFrom(s.VIP, s.Port), s.Scheduler, s.Persistence, s.Forward)
}

func parseSpec(c string) (l4.Service, error) {
	f := strings.Fields(c)
	if len(f) != 5 {
		return l4.Service{}, fmt.Errorf("comment %q: want 5 fields", c)
	}
	ap, err := netip.ParseAddrPort(f[1])
	if err != nil {
		return l4.Service{}, fmt.Errorf("comment %q: %w", c, err)
	}
	p, err := strconv.ParseUint(f[3], 10, 32)
	if err != nil {
		return l4.Service{}, fmt.Errorf("comment %q: %w", c, err)
	}
	return l4.Service{Protocol: l4.Protocol(f[0]), VIP: ap.Addr(), Port: ap.Port(), Scheduler: f[2],
		Persistence: uint32(p), Forward: l4.Forward(f[4])}, nil
}

// slots turns weights into slot counts: weight/gcd, scaled down to at most
// maxSlots in total (every positive weight keeps at least one slot).
func slots(ds []l4.Destination) []int {
	g, sum := 0, 0
	for _, d := range ds {
		if d.Weight > 0 {
			g = gcd(g, d.Weight)
			sum += d.Weight
		}
	}
	out := make([]int, len(ds))
	for i, d := range ds {
		if d.Weight <= 0 {
			continue
		}
		out[i] = d.Weight / g
		if sum/g > maxSlots {
			out[i] = max(1, d.Weight*maxSlots/sum)
		}
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// elements lays out the map: positive-weight backends interleaved in
// smooth weighted round-robin order at keys 0..modulus-1, drained ones
// after them. Each element's comment carries the configured weight.
func elements(s l4.Service) ([]nftables.SetElement, uint32) {
	n := slots(s.Destinations)
	total := 0
	for _, v := range n {
		total += v
	}
	var out []nftables.SetElement
	el := func(d l4.Destination) nftables.SetElement {
		val := append(d.Addr.AsSlice(), binaryutil.BigEndian.PutUint16(d.Port)...)
		val = append(val, 0, 0)
		return nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(len(out))), Val: val,
			Comment: "w=" + strconv.Itoa(d.Weight)}
	}
	cur := make([]int, len(n))
	for range total {
		best := -1
		for i, w := range n {
			if w == 0 {
				continue
			}
			cur[i] += w
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out = append(out, el(s.Destinations[best]))
	}
	for i, d := range s.Destinations {
		if n[i] == 0 {
			out = append(out, el(d))
		}
	}
	return out, uint32(total)
}

// Observed implements l4.Driver: it reads the table back from the kernel.
func (d *Driver) Observed(ctx context.Context) (l4.State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.observed()
}

func (d *Driver) observed() (l4.State, error) {
	c, err := d.cfg.conn()
	if err != nil {
		return l4.State{}, fmt.Errorf("nftables: %w", err)
	}
	t, err := c.ListTableOfFamily(d.cfg.Table, nftables.TableFamilyIPv4)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return l4.State{}, nil
		}
		return l4.State{}, fmt.Errorf("nftables: list table: %w", err)
	}
	rules, err := c.GetRules(t, &nftables.Chain{Name: "prerouting", Table: t})
	if err != nil {
		return l4.State{}, fmt.Errorf("nftables: list prerouting: %w", err)
	}
	var st l4.State
	for _, r := range rules {
		comment, ok := userdata.GetString(r.UserData, ruleComment)
		if !ok {
			return l4.State{}, fmt.Errorf("nftables: prerouting rule %d without a service comment", r.Handle)
		}
		s, err := parseSpec(comment)
		if err != nil {
			return l4.State{}, fmt.Errorf("nftables: prerouting rule %d: %w", r.Handle, err)
		}
		set, err := c.GetSetByName(t, "be_"+objName(s.Key()))
		if err != nil {
			return l4.State{}, fmt.Errorf("nftables: map of %s: %w", s.Key(), err)
		}
		els, err := c.GetSetElements(set)
		if err != nil {
			return l4.State{}, fmt.Errorf("nftables: map %s elements: %w", set.Name, err)
		}
		seen := map[netip.AddrPort]bool{}
		s.Destinations = []l4.Destination{}
		for _, e := range els {
			if len(e.Val) < 6 {
				continue
			}
			ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte(e.Val[:4])), binaryutil.BigEndian.Uint16(e.Val[4:6]))
			if seen[ap] {
				continue
			}
			seen[ap] = true
			w, _ := strconv.Atoi(strings.TrimPrefix(e.Comment, "w="))
			s.Destinations = append(s.Destinations, l4.Destination{Addr: ap.Addr(), Port: ap.Port(), Weight: w})
		}
		st.Services = append(st.Services, s)
	}
	return l4.Normalize(st), nil
}

var _ l4.StatsReader = (*Driver)(nil)

// Stats implements l4.StatsReader with what nftables can count: the nat
// chains see only the first packet of each connection, so the service
// rules' counters count new connections. Bytes and per-destination figures
// would need conntrack accounting and are left at zero.
func (d *Driver) Stats(ctx context.Context) ([]l4.ServiceStats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.cfg.conn()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	t, err := c.ListTableOfFamily(d.cfg.Table, nftables.TableFamilyIPv4)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("nftables: list table: %w", err)
	}
	byKey := map[l4.Key]*l4.ServiceStats{}
	var order []l4.Key
	for _, chain := range []string{"prerouting", "output"} {
		rules, err := c.GetRules(t, &nftables.Chain{Name: chain, Table: t})
		if err != nil {
			return nil, fmt.Errorf("nftables: list %s: %w", chain, err)
		}
		for _, r := range rules {
			comment, _ := userdata.GetString(r.UserData, ruleComment)
			s, err := parseSpec(comment)
			if err != nil {
				continue
			}
			ss := byKey[s.Key()]
			if ss == nil {
				ss = &l4.ServiceStats{Key: s.Key(), Destinations: map[netip.AddrPort]l4.Stats{}}
				byKey[s.Key()] = ss
				order = append(order, s.Key())
			}
			for _, e := range r.Exprs {
				if ctr, ok := e.(*expr.Counter); ok {
					ss.Total.Connections += ctr.Packets
				}
			}
		}
	}
	out := make([]l4.ServiceStats, 0, len(order))
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	return out, nil
}
