package events

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Node roles.
const (
	RoleLVS     = "lvs"
	RoleTengine = "tengine"
)

// NodeConfig is the whole desired data-plane state of one node, as the
// provisioner writes it to the desired-config bucket. Agents reconcile to it
// level-triggered: every version replaces the previous one entirely.
type NodeConfig struct {
	NodeID  string `json:"node_id"`
	Role    string `json:"role"`
	Version uint64 `json:"version"`
	// Address is the node's own address; tengine listeners bind to it.
	Address       string     `json:"address,omitempty"`
	LoadBalancers []LBConfig `json:"loadbalancers"`
	// Draining, when set, asks the node to stop accepting new connections and
	// finish the open ones (scale-in, delete).
	Draining bool `json:"draining,omitempty"`
}

// LBConfig is one load balancer's part of a node's config.
type LBConfig struct {
	ID        string           `json:"id"`
	VIP       string           `json:"vip"`
	Listeners []ListenerConfig `json:"listeners"`
}

// ListenerConfig is one listener as a data-plane node must serve it.
type ListenerConfig struct {
	ID       string `json:"id"`
	Protocol string `json:"protocol"` // TCP, UDP, HTTP
	Port     int    `json:"port"`
	// Scheduler, ForwardMethod and PersistenceTimeout configure the L4 tier.
	Scheduler          string `json:"scheduler,omitempty"`
	ForwardMethod      string `json:"forward_method,omitempty"`
	PersistenceTimeout int    `json:"persistence_timeout,omitempty"`
	// L4Targets are where the LVS sends this listener's traffic: the members
	// for TCP/UDP, the load balancer's tengine nodes (at Port) for HTTP.
	L4Targets              []Target          `json:"l4_targets,omitempty"`
	AllowedCIDRs           []string          `json:"allowed_cidrs,omitempty"`
	ConnectionLimit        int               `json:"connection_limit,omitempty"`
	TimeoutClientDataMS    int               `json:"timeout_client_data_ms,omitempty"`
	TimeoutMemberConnectMS int               `json:"timeout_member_connect_ms,omitempty"`
	TimeoutMemberDataMS    int               `json:"timeout_member_data_ms,omitempty"`
	InsertHeaders          map[string]string `json:"insert_headers,omitempty"`
	DrainTimeoutSeconds    int               `json:"drain_timeout_seconds,omitempty"`
	Pool                   *PoolConfig       `json:"pool,omitempty"`
}

// Target is an L4 destination.
type Target struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Weight  int    `json:"weight"`
}

// PoolConfig is a pool as the data plane sees it.
type PoolConfig struct {
	ID                 string              `json:"id"`
	Algorithm          string              `json:"algorithm"` // ROUND_ROBIN LEAST_CONNECTIONS SOURCE_IP
	SessionPersistence *SessionPersistence `json:"session_persistence,omitempty"`
	FailOpen           bool                `json:"fail_open"`
	Members            []MemberConfig      `json:"members"`
	HealthMonitor      *HealthCheckConfig  `json:"health_monitor,omitempty"`
}

// MemberConfig is one real server.
type MemberConfig struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Weight  int    `json:"weight"`
	Backup  bool   `json:"backup,omitempty"`
	// MonitorAddress/Port override where health checks go.
	MonitorAddress string `json:"monitor_address,omitempty"`
	MonitorPort    int    `json:"monitor_port,omitempty"`
}

// HealthCheckConfig is how an agent checks a pool's members.
type HealthCheckConfig struct {
	Type          string        `json:"type"` // TCP HTTP PING UDP-CONNECT
	Interval      time.Duration `json:"interval"`
	Timeout       time.Duration `json:"timeout"`
	Rise          int           `json:"rise"`
	Fall          int           `json:"fall"`
	HTTPMethod    string        `json:"http_method,omitempty"`
	URLPath       string        `json:"url_path,omitempty"`
	ExpectedCodes string        `json:"expected_codes,omitempty"`
}

// Validate checks a node config an agent received from the bus. A config that
// fails is not applied; the agent keeps its last good one.
func (c *NodeConfig) Validate() error {
	if !ValidToken(c.NodeID) {
		return fmt.Errorf("node config: invalid node_id %q", c.NodeID)
	}
	if c.Role != RoleLVS && c.Role != RoleTengine {
		return fmt.Errorf("node config %s: invalid role %q", c.NodeID, c.Role)
	}
	if c.Address != "" {
		if _, err := netip.ParseAddr(c.Address); err != nil {
			return fmt.Errorf("node config %s: address: %w", c.NodeID, err)
		}
	}
	var errs []error
	for _, lb := range c.LoadBalancers {
		if lb.ID == "" {
			errs = append(errs, errors.New("load balancer without id"))
		}
		if lb.VIP != "" {
			if _, err := netip.ParseAddr(lb.VIP); err != nil {
				errs = append(errs, fmt.Errorf("lb %s: vip: %w", lb.ID, err))
			}
		}
		for _, l := range lb.Listeners {
			if l.Port < 1 || l.Port > 65535 {
				errs = append(errs, fmt.Errorf("listener %s: port %d out of range", l.ID, l.Port))
			}
			switch l.Protocol {
			case "TCP", "UDP", "HTTP":
			default:
				errs = append(errs, fmt.Errorf("listener %s: protocol %q not supported by the data plane", l.ID, l.Protocol))
			}
			for _, t := range l.L4Targets {
				if err := validHostPort(t.Address, t.Port); err != nil {
					errs = append(errs, fmt.Errorf("listener %s target %s: %w", l.ID, t.ID, err))
				}
			}
			for _, cidr := range l.AllowedCIDRs {
				if _, err := netip.ParsePrefix(cidr); err != nil {
					errs = append(errs, fmt.Errorf("listener %s: allowed_cidrs: %w", l.ID, err))
				}
			}
			if l.Pool != nil {
				for _, m := range l.Pool.Members {
					if err := validHostPort(m.Address, m.Port); err != nil {
						errs = append(errs, fmt.Errorf("pool %s member %s: %w", l.Pool.ID, m.ID, err))
					}
					if m.Weight < 0 || m.Weight > 256 {
						errs = append(errs, fmt.Errorf("pool %s member %s: weight %d out of range", l.Pool.ID, m.ID, m.Weight))
					}
				}
				if hc := l.Pool.HealthMonitor; hc != nil && (hc.Interval <= 0 || hc.Timeout <= 0 || hc.Rise < 1 || hc.Fall < 1) {
					errs = append(errs, fmt.Errorf("pool %s: health monitor needs positive interval, timeout, rise and fall", l.Pool.ID))
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("node config %s: %w", c.NodeID, err)
	}
	return nil
}

func validHostPort(addr string, port int) error {
	if _, err := netip.ParseAddr(addr); err != nil {
		return fmt.Errorf("address: %w", err)
	}
	if port < 1 || port > 65535 {
		return fmt.Errorf("port %d out of range", port)
	}
	return nil
}

// Heartbeat is what an agent publishes every few seconds.
type Heartbeat struct {
	NodeID        string    `json:"node_id"`
	Role          string    `json:"role"`
	Time          time.Time `json:"time"`
	ConfigVersion uint64    `json:"config_version"`
	Driver        string    `json:"driver"`
	Address       string    `json:"address,omitempty"`
}

// AppliedReport says a node applied (or failed to apply) a config version.
type AppliedReport struct {
	NodeID  string    `json:"node_id"`
	Version uint64    `json:"version"`
	Time    time.Time `json:"time"`
	Error   string    `json:"error,omitempty"`
	// LoadBalancers lists the load balancers the applied config covers.
	LoadBalancers []string `json:"loadbalancers,omitempty"`
}

// HealthReport says a target changed health state as seen by a node.
type HealthReport struct {
	NodeID         string    `json:"node_id"`
	Time           time.Time `json:"time"`
	LoadBalancerID string    `json:"loadbalancer_id"`
	ListenerID     string    `json:"listener_id,omitempty"`
	PoolID         string    `json:"pool_id,omitempty"`
	MemberID       string    `json:"member_id,omitempty"`
	Address        string    `json:"address"`
	Port           int       `json:"port"`
	Healthy        bool      `json:"healthy"`
	Reason         string    `json:"reason,omitempty"`
}

// VRRPReport carries an L4 node's VRRP state.
type VRRPReport struct {
	NodeID string    `json:"node_id"`
	Pair   string    `json:"pair"`
	State  string    `json:"state"` // MASTER BACKUP FAULT
	Time   time.Time `json:"time"`
}

// Metric dimension names (AWS Classic ELB).
const (
	DimLoadBalancer     = "LoadBalancer"
	DimListener         = "Listener"
	DimAvailabilityZone = "AvailabilityZone"
	DimPool             = "Pool"
	DimNode             = "Node"
)

// SampleBatch is what an agent publishes every sample interval (10 s): one
// statistic set per metric and dimension combination over that interval.
type SampleBatch struct {
	NodeID   string        `json:"node_id"`
	Role     string        `json:"role"`
	Time     time.Time     `json:"time"`     // end of the interval
	Interval time.Duration `json:"interval"` // normally 10 s
	Points   []SamplePoint `json:"points"`
}

// SamplePoint is a CloudWatch-style statistic set. Counters (RequestCount,
// HTTPCode_*) report Sum over the interval with Count = number of events;
// gauges (HealthyHostCount, SurgeQueueLength) report one observation. Values
// optionally carries raw observations (e.g. per-request latencies, at most
// MaxSampleValues) so that percentiles can be computed exactly.
type SamplePoint struct {
	Metric     string            `json:"metric"`
	Unit       string            `json:"unit,omitempty"`
	Dimensions map[string]string `json:"dimensions"`
	Count      float64           `json:"count"`
	Sum        float64           `json:"sum"`
	Min        float64           `json:"min"`
	Max        float64           `json:"max"`
	Values     []float64         `json:"values,omitempty"`
}

// MaxSampleValues bounds SamplePoint.Values.
const MaxSampleValues = 1024
