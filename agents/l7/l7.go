// Package l7 is the tengine role of the agent: it turns a node's desired
// config into the L7 driver's desired state (HTTP listeners, their pools,
// members minus unhealthy ones, fail-open), health-checks members and turns
// driver statistics into AWS-style metric samples.
//
// Drivers (nginx, builtin) live in sub-packages behind Driver.
package l7

import (
	"context"
	"errors"
	"time"
)

// Errors shared by drivers.
var (
	// ErrInvalidDesired is returned by Apply for a desired state the driver
	// cannot program (bad bind address, bad cookie name ...).
	ErrInvalidDesired = errors.New("invalid L7 desired state")
	// ErrDriverClosed is returned after Close.
	ErrDriverClosed = errors.New("L7 driver closed")
)

// Load-balancing algorithms (Octavia names).
const (
	AlgRoundRobin = "ROUND_ROBIN"
	AlgLeastConn  = "LEAST_CONNECTIONS"
	AlgSourceIP   = "SOURCE_IP"
)

// Session persistence types (Octavia names).
const (
	StickyHTTPCookie = "HTTP_COOKIE"
	StickyAppCookie  = "APP_COOKIE"
	StickySourceIP   = "SOURCE_IP"
)

// InsertCookieName is the cookie the data plane inserts for HTTP_COOKIE
// stickiness.
const InsertCookieName = "ELBSTICKY"

// Driver is an L7 data plane. Apply is level-triggered: it receives the whole
// desired state, compares it with what runs and changes only the difference,
// without dropping in-flight requests. Implementations are safe for
// concurrent use.
type Driver interface {
	// Name is "nginx" or "builtin".
	Name() string
	Apply(ctx context.Context, d Desired) error
	// Stats returns what happened since the previous call.
	Stats() Snapshot
	// Close stops the data plane gracefully.
	Close() error
}

// Desired is the L7 data plane of one node.
type Desired struct {
	Listeners []Listener
}

// Listener is one HTTP listener with its (health-filtered) pool.
type Listener struct {
	ID             string
	LoadBalancerID string
	// Bind is host:port.
	Bind      string
	PoolID    string
	Algorithm string
	// StickyType is "", HTTP_COOKIE, APP_COOKIE or SOURCE_IP; CookieName is
	// the application cookie for APP_COOKIE.
	StickyType string
	CookieName string
	// Members are the members in rotation. Empty means: answer 503.
	Members         []Member
	AllowedCIDRs    []string
	ConnectionLimit int // 0 or negative: unlimited
	ConnectTimeout  time.Duration
	MemberTimeout   time.Duration
	ClientTimeout   time.Duration
	DrainTimeout    time.Duration
	// XForwardedPort and XForwardedProto add those headers; X-Forwarded-For
	// is always set.
	XForwardedPort  bool
	XForwardedProto bool
}

// Member is one real server in rotation.
type Member struct {
	ID      string
	Address string
	Port    int
	Weight  int
	Backup  bool
}
