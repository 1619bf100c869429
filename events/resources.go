package events

// Resource specs are the user-settable fields of the Octavia resources. Create
// and update events carry the whole spec after the change, so a projection
// never has to merge partial updates.

// LoadBalancerSpec is what a tenant asked for when creating a load balancer.
type LoadBalancerSpec struct {
	Name             string   `json:"name"`
	Description      string   `json:"description,omitempty"`
	AdminStateUp     bool     `json:"admin_state_up"`
	VIPAddress       string   `json:"vip_address,omitempty"`
	VIPSubnetID      string   `json:"vip_subnet_id,omitempty"`
	VIPNetworkID     string   `json:"vip_network_id,omitempty"`
	VIPPortID        string   `json:"vip_port_id,omitempty"`
	AvailabilityZone string   `json:"availability_zone,omitempty"`
	FlavorID         string   `json:"flavor_id,omitempty"`
	Provider         string   `json:"provider,omitempty"`
	Tags             []string `json:"tags,omitempty"`
	// L7Nodes is the number of tengine nodes to start with (extension).
	L7Nodes int `json:"l7_nodes,omitempty"`
	// MinL7Nodes and MaxL7Nodes bound the scaler (extension).
	MinL7Nodes int `json:"min_l7_nodes,omitempty"`
	MaxL7Nodes int `json:"max_l7_nodes,omitempty"`
}

// ListenerSpec is an Octavia listener plus the LVS-layer extensions.
type ListenerSpec struct {
	LoadBalancerID         string            `json:"loadbalancer_id"`
	Name                   string            `json:"name"`
	Description            string            `json:"description,omitempty"`
	AdminStateUp           bool              `json:"admin_state_up"`
	Protocol               string            `json:"protocol"` // TCP, UDP, HTTP, HTTPS, TERMINATED_HTTPS, SCTP
	ProtocolPort           int               `json:"protocol_port"`
	ConnectionLimit        int               `json:"connection_limit"` // -1 unlimited
	DefaultPoolID          string            `json:"default_pool_id,omitempty"`
	TimeoutClientData      int               `json:"timeout_client_data"`    // ms
	TimeoutMemberConnect   int               `json:"timeout_member_connect"` // ms
	TimeoutMemberData      int               `json:"timeout_member_data"`    // ms
	TimeoutTCPInspect      int               `json:"timeout_tcp_inspect"`    // ms
	InsertHeaders          map[string]string `json:"insert_headers,omitempty"`
	AllowedCIDRs           []string          `json:"allowed_cidrs,omitempty"`
	Tags                   []string          `json:"tags,omitempty"`
	Scheduler              string            `json:"scheduler,omitempty"`      // extension: rr wrr lc wlc sh dh sed nq mh
	ForwardMethod          string            `json:"forward_method,omitempty"` // extension: DR NAT TUN
	PersistenceTimeout     int               `json:"persistence_timeout,omitempty"`
	ConnectionDrainTimeout int               `json:"connection_drain_timeout,omitempty"` // extension, seconds
}

// SessionPersistence is Octavia's session_persistence object.
type SessionPersistence struct {
	Type                   string `json:"type"` // SOURCE_IP, HTTP_COOKIE, APP_COOKIE
	CookieName             string `json:"cookie_name,omitempty"`
	PersistenceTimeout     int    `json:"persistence_timeout,omitempty"`
	PersistenceGranularity string `json:"persistence_granularity,omitempty"`
}

// PoolSpec is an Octavia pool.
type PoolSpec struct {
	LoadBalancerID     string              `json:"loadbalancer_id"`
	ListenerID         string              `json:"listener_id,omitempty"`
	Name               string              `json:"name"`
	Description        string              `json:"description,omitempty"`
	AdminStateUp       bool                `json:"admin_state_up"`
	Protocol           string              `json:"protocol"`
	LBAlgorithm        string              `json:"lb_algorithm"` // ROUND_ROBIN LEAST_CONNECTIONS SOURCE_IP SOURCE_IP_PORT
	SessionPersistence *SessionPersistence `json:"session_persistence,omitempty"`
	Tags               []string            `json:"tags,omitempty"`
	// FailOpen sends traffic to every member when all are unhealthy (extension).
	FailOpen bool `json:"fail_open"`
}

// MemberSpec is an Octavia pool member (a real server).
type MemberSpec struct {
	PoolID         string   `json:"pool_id"`
	Name           string   `json:"name"`
	Address        string   `json:"address"`
	ProtocolPort   int      `json:"protocol_port"`
	Weight         int      `json:"weight"`
	AdminStateUp   bool     `json:"admin_state_up"`
	Backup         bool     `json:"backup"`
	SubnetID       string   `json:"subnet_id,omitempty"`
	MonitorAddress string   `json:"monitor_address,omitempty"`
	MonitorPort    int      `json:"monitor_port,omitempty"`
	Tags           []string `json:"tags,omitempty"`
}

// HealthMonitorSpec is an Octavia health monitor. Delay and Timeout are seconds.
type HealthMonitorSpec struct {
	PoolID         string   `json:"pool_id"`
	Name           string   `json:"name"`
	Type           string   `json:"type"` // HTTP HTTPS PING TCP TLS-HELLO UDP-CONNECT SCTP
	Delay          int      `json:"delay"`
	Timeout        int      `json:"timeout"`
	MaxRetries     int      `json:"max_retries"`      // rise
	MaxRetriesDown int      `json:"max_retries_down"` // fall
	HTTPMethod     string   `json:"http_method,omitempty"`
	URLPath        string   `json:"url_path,omitempty"`
	ExpectedCodes  string   `json:"expected_codes,omitempty"`
	AdminStateUp   bool     `json:"admin_state_up"`
	Tags           []string `json:"tags,omitempty"`
}

// L7PolicySpec is an Octavia L7 policy.
type L7PolicySpec struct {
	ListenerID       string   `json:"listener_id"`
	Name             string   `json:"name"`
	Description      string   `json:"description,omitempty"`
	Action           string   `json:"action"` // REDIRECT_TO_POOL REDIRECT_TO_URL REDIRECT_PREFIX REJECT
	Position         int      `json:"position"`
	RedirectPoolID   string   `json:"redirect_pool_id,omitempty"`
	RedirectURL      string   `json:"redirect_url,omitempty"`
	RedirectPrefix   string   `json:"redirect_prefix,omitempty"`
	RedirectHTTPCode int      `json:"redirect_http_code,omitempty"`
	AdminStateUp     bool     `json:"admin_state_up"`
	Tags             []string `json:"tags,omitempty"`
}

// L7RuleSpec is an Octavia L7 rule.
type L7RuleSpec struct {
	L7PolicyID   string   `json:"l7policy_id"`
	Type         string   `json:"type"` // HOST_NAME PATH FILE_TYPE HEADER COOKIE SSL_*
	CompareType  string   `json:"compare_type"`
	Key          string   `json:"key,omitempty"`
	Value        string   `json:"value"`
	Invert       bool     `json:"invert"`
	AdminStateUp bool     `json:"admin_state_up"`
	Tags         []string `json:"tags,omitempty"`
}
