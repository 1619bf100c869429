// Package readmodel is the gateway's projection: the Octavia views of every
// load balancer tree, built from the event stream and read by GETs. It is
// rebuilt by replay on start-up and never written by request handlers.
package readmodel

import (
	"time"

	"github.com/elbcloud/elb/events"
)

// TimeFormat is Octavia's timestamp format (UTC, no zone suffix), which
// gophercloud parses.
const TimeFormat = "2006-01-02T15:04:05"

// Ref is a {"id": ...} reference to another resource.
type Ref struct {
	ID string `json:"id"`
}

// ProvisioningLog is the extension field that tells why a load balancer is
// in ERROR and what the workflow did.
type ProvisioningLog struct {
	Reason string                `json:"reason"`
	Step   string                `json:"step,omitempty"`
	Time   string                `json:"time"`
	Log    []events.StepLogEntry `json:"log,omitempty"`
}

// Node is a tengine node of a load balancer (extension).
type Node struct {
	ID      string `json:"id"`
	Address string `json:"address,omitempty"`
}

// LoadBalancer is the Octavia load balancer view plus extensions.
type LoadBalancer struct {
	ID                 string           `json:"id"`
	Name               string           `json:"name"`
	Description        string           `json:"description"`
	ProjectID          string           `json:"project_id"`
	TenantID           string           `json:"tenant_id"`
	ProvisioningStatus string           `json:"provisioning_status"`
	OperatingStatus    string           `json:"operating_status"`
	AdminStateUp       bool             `json:"admin_state_up"`
	VIPAddress         string           `json:"vip_address"`
	VIPPortID          string           `json:"vip_port_id"`
	VIPSubnetID        string           `json:"vip_subnet_id"`
	VIPNetworkID       string           `json:"vip_network_id"`
	VIPQosPolicyID     *string          `json:"vip_qos_policy_id"`
	Provider           string           `json:"provider"`
	FlavorID           string           `json:"flavor_id"`
	AvailabilityZone   string           `json:"availability_zone"`
	Listeners          []Ref            `json:"listeners"`
	Pools              []Ref            `json:"pools"`
	Tags               []string         `json:"tags"`
	CreatedAt          string           `json:"created_at"`
	UpdatedAt          *string          `json:"updated_at"`
	L7Nodes            int              `json:"l7_nodes"`
	MinL7Nodes         int              `json:"min_l7_nodes"`
	MaxL7Nodes         int              `json:"max_l7_nodes"`
	Nodes              []Node           `json:"nodes"`
	ProvisioningLog    *ProvisioningLog `json:"provisioning_log"`
}

// Listener is the Octavia listener view plus the LVS extensions.
type Listener struct {
	ID                     string            `json:"id"`
	Name                   string            `json:"name"`
	Description            string            `json:"description"`
	ProjectID              string            `json:"project_id"`
	TenantID               string            `json:"tenant_id"`
	Protocol               string            `json:"protocol"`
	ProtocolPort           int               `json:"protocol_port"`
	ConnectionLimit        int               `json:"connection_limit"`
	DefaultPoolID          *string           `json:"default_pool_id"`
	DefaultTLSContainerRef *string           `json:"default_tls_container_ref"`
	SNIContainerRefs       []string          `json:"sni_container_refs"`
	Loadbalancers          []Ref             `json:"loadbalancers"`
	L7Policies             []Ref             `json:"l7policies"`
	AdminStateUp           bool              `json:"admin_state_up"`
	ProvisioningStatus     string            `json:"provisioning_status"`
	OperatingStatus        string            `json:"operating_status"`
	InsertHeaders          map[string]string `json:"insert_headers"`
	TimeoutClientData      int               `json:"timeout_client_data"`
	TimeoutMemberConnect   int               `json:"timeout_member_connect"`
	TimeoutMemberData      int               `json:"timeout_member_data"`
	TimeoutTCPInspect      int               `json:"timeout_tcp_inspect"`
	AllowedCIDRs           []string          `json:"allowed_cidrs"`
	Tags                   []string          `json:"tags"`
	CreatedAt              string            `json:"created_at"`
	UpdatedAt              *string           `json:"updated_at"`
	Scheduler              string            `json:"scheduler"`
	ForwardMethod          string            `json:"forward_method"`
	PersistenceTimeout     int               `json:"persistence_timeout"`
	ConnectionDrainTimeout int               `json:"connection_drain_timeout"`

	lb string
}

// Pool is the Octavia pool view plus extensions.
type Pool struct {
	ID                 string                     `json:"id"`
	Name               string                     `json:"name"`
	Description        string                     `json:"description"`
	ProjectID          string                     `json:"project_id"`
	TenantID           string                     `json:"tenant_id"`
	Protocol           string                     `json:"protocol"`
	LBAlgorithm        string                     `json:"lb_algorithm"`
	SessionPersistence *events.SessionPersistence `json:"session_persistence"`
	AdminStateUp       bool                       `json:"admin_state_up"`
	Listeners          []Ref                      `json:"listeners"`
	Loadbalancers      []Ref                      `json:"loadbalancers"`
	Members            []Ref                      `json:"members"`
	HealthMonitorID    *string                    `json:"healthmonitor_id"`
	ProvisioningStatus string                     `json:"provisioning_status"`
	OperatingStatus    string                     `json:"operating_status"`
	TLSEnabled         bool                       `json:"tls_enabled"`
	Tags               []string                   `json:"tags"`
	CreatedAt          string                     `json:"created_at"`
	UpdatedAt          *string                    `json:"updated_at"`
	FailOpen           bool                       `json:"fail_open"`

	lb       string
	listener string
}

// Member is the Octavia member view.
type Member struct {
	ID                 string   `json:"id"`
	Name               string   `json:"name"`
	PoolID             string   `json:"pool_id"`
	ProjectID          string   `json:"project_id"`
	TenantID           string   `json:"tenant_id"`
	Address            string   `json:"address"`
	ProtocolPort       int      `json:"protocol_port"`
	Weight             int      `json:"weight"`
	SubnetID           *string  `json:"subnet_id"`
	AdminStateUp       bool     `json:"admin_state_up"`
	Backup             bool     `json:"backup"`
	MonitorAddress     *string  `json:"monitor_address"`
	MonitorPort        *int     `json:"monitor_port"`
	ProvisioningStatus string   `json:"provisioning_status"`
	OperatingStatus    string   `json:"operating_status"`
	Tags               []string `json:"tags"`
	CreatedAt          string   `json:"created_at"`
	UpdatedAt          *string  `json:"updated_at"`

	lb        string
	unhealthy bool
}

// HealthMonitor is the Octavia health monitor view.
type HealthMonitor struct {
	ID                 string   `json:"id"`
	Name               string   `json:"name"`
	ProjectID          string   `json:"project_id"`
	TenantID           string   `json:"tenant_id"`
	Type               string   `json:"type"`
	Delay              int      `json:"delay"`
	Timeout            int      `json:"timeout"`
	MaxRetries         int      `json:"max_retries"`
	MaxRetriesDown     int      `json:"max_retries_down"`
	HTTPMethod         *string  `json:"http_method"`
	URLPath            *string  `json:"url_path"`
	ExpectedCodes      *string  `json:"expected_codes"`
	AdminStateUp       bool     `json:"admin_state_up"`
	Pools              []Ref    `json:"pools"`
	ProvisioningStatus string   `json:"provisioning_status"`
	OperatingStatus    string   `json:"operating_status"`
	Tags               []string `json:"tags"`
	CreatedAt          string   `json:"created_at"`
	UpdatedAt          *string  `json:"updated_at"`

	lb   string
	pool string
}

// L7Policy is the Octavia L7 policy view.
type L7Policy struct {
	ID                 string   `json:"id"`
	Name               string   `json:"name"`
	Description        string   `json:"description"`
	ProjectID          string   `json:"project_id"`
	TenantID           string   `json:"tenant_id"`
	ListenerID         string   `json:"listener_id"`
	Action             string   `json:"action"`
	Position           int      `json:"position"`
	RedirectPoolID     *string  `json:"redirect_pool_id"`
	RedirectURL        *string  `json:"redirect_url"`
	RedirectPrefix     *string  `json:"redirect_prefix"`
	RedirectHTTPCode   *int     `json:"redirect_http_code"`
	AdminStateUp       bool     `json:"admin_state_up"`
	Rules              []Ref    `json:"rules"`
	ProvisioningStatus string   `json:"provisioning_status"`
	OperatingStatus    string   `json:"operating_status"`
	Tags               []string `json:"tags"`
	CreatedAt          string   `json:"created_at"`
	UpdatedAt          *string  `json:"updated_at"`

	lb string
}

// L7Rule is the Octavia L7 rule view.
type L7Rule struct {
	ID                 string   `json:"id"`
	ProjectID          string   `json:"project_id"`
	TenantID           string   `json:"tenant_id"`
	Type               string   `json:"type"`
	CompareType        string   `json:"compare_type"`
	Key                *string  `json:"key"`
	Value              string   `json:"value"`
	Invert             bool     `json:"invert"`
	AdminStateUp       bool     `json:"admin_state_up"`
	ProvisioningStatus string   `json:"provisioning_status"`
	OperatingStatus    string   `json:"operating_status"`
	Tags               []string `json:"tags"`
	CreatedAt          string   `json:"created_at"`
	UpdatedAt          *string  `json:"updated_at"`

	lb     string
	policy string
}

func ts(t time.Time) string { return t.UTC().Format(TimeFormat) }

func tsp(t time.Time) *string { s := ts(t); return &s }

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func tags(t []string) []string {
	if t == nil {
		return []string{}
	}
	return append([]string(nil), t...)
}

// FilterFields returns the filters a list accepts beyond the view's own
// fields (Octavia filters pools by loadbalancer_id, monitors by pool_id…).
func FilterFields(v any) map[string]string {
	switch x := v.(type) {
	case Listener:
		return map[string]string{"loadbalancer_id": x.lb}
	case Pool:
		return map[string]string{"loadbalancer_id": x.lb, "listener_id": x.listener}
	case Member:
		return map[string]string{"loadbalancer_id": x.lb}
	case HealthMonitor:
		return map[string]string{"loadbalancer_id": x.lb, "pool_id": x.pool}
	case L7Policy:
		return map[string]string{"loadbalancer_id": x.lb}
	case L7Rule:
		return map[string]string{"loadbalancer_id": x.lb, "l7policy_id": x.policy}
	}
	return nil
}
