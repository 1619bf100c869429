package ports

import (
	"encoding/json"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/apigw/domain"
)

// Raw is a field ELB knows from Octavia but does not implement.
type Raw = Opt[json.RawMessage]

// LoadBalancerReq is the body of POST and PUT /loadbalancers.
type LoadBalancerReq struct {
	Name             Opt[string]   `json:"name"`
	Description      Opt[string]   `json:"description"`
	AdminStateUp     Opt[bool]     `json:"admin_state_up"`
	VIPAddress       Opt[string]   `json:"vip_address"`
	VIPSubnetID      Opt[string]   `json:"vip_subnet_id"`
	VIPNetworkID     Opt[string]   `json:"vip_network_id"`
	VIPPortID        Opt[string]   `json:"vip_port_id"`
	ProjectID        Opt[string]   `json:"project_id"`
	TenantID         Opt[string]   `json:"tenant_id"`
	AvailabilityZone Opt[string]   `json:"availability_zone"`
	FlavorID         Opt[string]   `json:"flavor_id"`
	Provider         Opt[string]   `json:"provider"`
	Tags             Opt[[]string] `json:"tags"`
	L7Nodes          Opt[int]      `json:"l7_nodes"`
	MinL7Nodes       Opt[int]      `json:"min_l7_nodes"`
	MaxL7Nodes       Opt[int]      `json:"max_l7_nodes"`
	VIPQosPolicyID   Raw           `json:"vip_qos_policy_id"`
	VIPSGIDs         Raw           `json:"vip_sg_ids"`
	AdditionalVIPs   Raw           `json:"additional_vips"`
	Listeners        Raw           `json:"listeners"`
	Pools            Raw           `json:"pools"`
}

// Project returns the project_id (or tenant_id) sent, if any.
func (r *LoadBalancerReq) Project() string { return project(r.ProjectID, r.TenantID) }

func project(p, t Opt[string]) string {
	if p.Has() {
		return p.V
	}
	if t.Has() {
		return t.V
	}
	return ""
}

// Apply applies the request to s (create: s holds the defaults).
func (r *LoadBalancerReq) Apply(s *events.LoadBalancerSpec, create bool) error {
	if err := firstErr(unsupported("vip_qos_policy_id", r.VIPQosPolicyID), unsupported("vip_sg_ids", r.VIPSGIDs),
		unsupported("additional_vips", r.AdditionalVIPs), unsupported("listeners", r.Listeners), unsupported("pools", r.Pools)); err != nil {
		return err
	}
	if !create {
		if err := firstErr(immutable("vip_address", r.VIPAddress), immutable("vip_subnet_id", r.VIPSubnetID),
			immutable("vip_network_id", r.VIPNetworkID), immutable("vip_port_id", r.VIPPortID), immutable("project_id", r.ProjectID),
			immutable("tenant_id", r.TenantID), immutable("availability_zone", r.AvailabilityZone), immutable("flavor_id", r.FlavorID),
			immutable("provider", r.Provider)); err != nil {
			return err
		}
	}
	if r.AdminStateUp.Set && r.AdminStateUp.Null {
		return domain.Invalid("admin_state_up", "must be true or false")
	}
	r.Name.apply(&s.Name)
	r.Description.apply(&s.Description)
	r.AdminStateUp.apply(&s.AdminStateUp)
	r.VIPAddress.apply(&s.VIPAddress)
	r.VIPSubnetID.apply(&s.VIPSubnetID)
	r.VIPNetworkID.apply(&s.VIPNetworkID)
	r.VIPPortID.apply(&s.VIPPortID)
	r.AvailabilityZone.apply(&s.AvailabilityZone)
	r.FlavorID.apply(&s.FlavorID)
	r.Provider.apply(&s.Provider)
	r.Tags.apply(&s.Tags)
	r.L7Nodes.apply(&s.L7Nodes)
	r.MinL7Nodes.apply(&s.MinL7Nodes)
	r.MaxL7Nodes.apply(&s.MaxL7Nodes)
	return domain.ValidateLoadBalancer(*s)
}

// ListenerReq is the body of POST and PUT /listeners.
type ListenerReq struct {
	LoadBalancerID         Opt[string]            `json:"loadbalancer_id"`
	Protocol               Opt[string]            `json:"protocol"`
	ProtocolPort           Opt[int]               `json:"protocol_port"`
	Name                   Opt[string]            `json:"name"`
	Description            Opt[string]            `json:"description"`
	AdminStateUp           Opt[bool]              `json:"admin_state_up"`
	ConnectionLimit        Opt[int]               `json:"connection_limit"`
	DefaultPoolID          Opt[string]            `json:"default_pool_id"`
	TimeoutClientData      Opt[int]               `json:"timeout_client_data"`
	TimeoutMemberConnect   Opt[int]               `json:"timeout_member_connect"`
	TimeoutMemberData      Opt[int]               `json:"timeout_member_data"`
	TimeoutTCPInspect      Opt[int]               `json:"timeout_tcp_inspect"`
	InsertHeaders          Opt[map[string]string] `json:"insert_headers"`
	AllowedCIDRs           Opt[[]string]          `json:"allowed_cidrs"`
	Tags                   Opt[[]string]          `json:"tags"`
	ProjectID              Opt[string]            `json:"project_id"`
	TenantID               Opt[string]            `json:"tenant_id"`
	Scheduler              Opt[string]            `json:"scheduler"`
	ForwardMethod          Opt[string]            `json:"forward_method"`
	PersistenceTimeout     Opt[int]               `json:"persistence_timeout"`
	ConnectionDrainTimeout Opt[int]               `json:"connection_drain_timeout"`
	DefaultTLSContainerRef Raw                    `json:"default_tls_container_ref"`
	SNIContainerRefs       Raw                    `json:"sni_container_refs"`
	DefaultPool            Raw                    `json:"default_pool"`
	L7Policies             Raw                    `json:"l7policies"`
	ALPNProtocols          Raw                    `json:"alpn_protocols"`
	ClientAuthentication   Raw                    `json:"client_authentication"`
	ClientCATLSContainer   Raw                    `json:"client_ca_tls_container_ref"`
	ClientCRLContainer     Raw                    `json:"client_crl_container_ref"`
	HSTSIncludeSubdomains  Raw                    `json:"hsts_include_subdomains"`
	HSTSMaxAge             Raw                    `json:"hsts_max_age"`
	HSTSPreload            Raw                    `json:"hsts_preload"`
	TLSCiphers             Raw                    `json:"tls_ciphers"`
	TLSVersions            Raw                    `json:"tls_versions"`
}

// Project returns the project_id (or tenant_id) sent, if any.
func (r *ListenerReq) Project() string { return project(r.ProjectID, r.TenantID) }

// Apply applies the request to s.
func (r *ListenerReq) Apply(s *events.ListenerSpec, create bool) error {
	if err := firstErr(unsupported("default_tls_container_ref", r.DefaultTLSContainerRef), unsupported("sni_container_refs", r.SNIContainerRefs),
		unsupported("default_pool", r.DefaultPool), unsupported("l7policies", r.L7Policies), unsupported("alpn_protocols", r.ALPNProtocols),
		unsupported("client_authentication", r.ClientAuthentication), unsupported("client_ca_tls_container_ref", r.ClientCATLSContainer),
		unsupported("client_crl_container_ref", r.ClientCRLContainer), unsupported("hsts_include_subdomains", r.HSTSIncludeSubdomains),
		unsupported("hsts_max_age", r.HSTSMaxAge), unsupported("hsts_preload", r.HSTSPreload), unsupported("tls_ciphers", r.TLSCiphers),
		unsupported("tls_versions", r.TLSVersions)); err != nil {
		return err
	}
	if create {
		if err := firstErr(required("loadbalancer_id", r.LoadBalancerID), required("protocol", r.Protocol), required("protocol_port", r.ProtocolPort)); err != nil {
			return err
		}
	} else if err := firstErr(immutable("loadbalancer_id", r.LoadBalancerID), immutable("protocol", r.Protocol),
		immutable("protocol_port", r.ProtocolPort), immutable("project_id", r.ProjectID), immutable("tenant_id", r.TenantID)); err != nil {
		return err
	}
	if r.AdminStateUp.Set && r.AdminStateUp.Null {
		return domain.Invalid("admin_state_up", "must be true or false")
	}
	r.LoadBalancerID.apply(&s.LoadBalancerID)
	r.Protocol.apply(&s.Protocol)
	r.ProtocolPort.apply(&s.ProtocolPort)
	r.Name.apply(&s.Name)
	r.Description.apply(&s.Description)
	r.AdminStateUp.apply(&s.AdminStateUp)
	if r.ConnectionLimit.Set && r.ConnectionLimit.Null {
		s.ConnectionLimit = -1
	} else {
		r.ConnectionLimit.apply(&s.ConnectionLimit)
	}
	r.DefaultPoolID.apply(&s.DefaultPoolID)
	r.TimeoutClientData.apply(&s.TimeoutClientData)
	r.TimeoutMemberConnect.apply(&s.TimeoutMemberConnect)
	r.TimeoutMemberData.apply(&s.TimeoutMemberData)
	r.TimeoutTCPInspect.apply(&s.TimeoutTCPInspect)
	r.InsertHeaders.apply(&s.InsertHeaders)
	r.AllowedCIDRs.apply(&s.AllowedCIDRs)
	r.Tags.apply(&s.Tags)
	r.Scheduler.apply(&s.Scheduler)
	r.ForwardMethod.apply(&s.ForwardMethod)
	r.PersistenceTimeout.apply(&s.PersistenceTimeout)
	r.ConnectionDrainTimeout.apply(&s.ConnectionDrainTimeout)
	if s.LoadBalancerID != "" && !domain.ValidID(s.LoadBalancerID) {
		return domain.Invalid("loadbalancer_id", "%q is not a valid id", s.LoadBalancerID)
	}
	return domain.ValidateListener(*s)
}

// PoolReq is the body of POST and PUT /pools.
type PoolReq struct {
	LoadBalancerID     Opt[string]                     `json:"loadbalancer_id"`
	ListenerID         Opt[string]                     `json:"listener_id"`
	Protocol           Opt[string]                     `json:"protocol"`
	LBAlgorithm        Opt[string]                     `json:"lb_algorithm"`
	Name               Opt[string]                     `json:"name"`
	Description        Opt[string]                     `json:"description"`
	AdminStateUp       Opt[bool]                       `json:"admin_state_up"`
	SessionPersistence Opt[*events.SessionPersistence] `json:"session_persistence"`
	Tags               Opt[[]string]                   `json:"tags"`
	FailOpen           Opt[bool]                       `json:"fail_open"`
	ProjectID          Opt[string]                     `json:"project_id"`
	TenantID           Opt[string]                     `json:"tenant_id"`
	ALPNProtocols      Raw                             `json:"alpn_protocols"`
	CATLSContainerRef  Raw                             `json:"ca_tls_container_ref"`
	CRLContainerRef    Raw                             `json:"crl_container_ref"`
	TLSEnabled         Raw                             `json:"tls_enabled"`
	TLSCiphers         Raw                             `json:"tls_ciphers"`
	TLSContainerRef    Raw                             `json:"tls_container_ref"`
	TLSVersions        Raw                             `json:"tls_versions"`
	Members            Raw                             `json:"members"`
	HealthMonitor      Raw                             `json:"healthmonitor"`
}

// Project returns the project_id (or tenant_id) sent, if any.
func (r *PoolReq) Project() string { return project(r.ProjectID, r.TenantID) }

// Apply applies the request to s.
func (r *PoolReq) Apply(s *events.PoolSpec, create bool) error {
	if err := firstErr(unsupported("alpn_protocols", r.ALPNProtocols), unsupported("ca_tls_container_ref", r.CATLSContainerRef),
		unsupported("crl_container_ref", r.CRLContainerRef), unsupported("tls_enabled", r.TLSEnabled), unsupported("tls_ciphers", r.TLSCiphers),
		unsupported("tls_container_ref", r.TLSContainerRef), unsupported("tls_versions", r.TLSVersions), unsupported("members", r.Members),
		unsupported("healthmonitor", r.HealthMonitor)); err != nil {
		return err
	}
	if create {
		if err := firstErr(required("protocol", r.Protocol), required("lb_algorithm", r.LBAlgorithm)); err != nil {
			return err
		}
		if !r.ListenerID.Has() && !r.LoadBalancerID.Has() {
			return domain.Invalid("loadbalancer_id", "a pool needs a listener_id or a loadbalancer_id")
		}
	} else if err := firstErr(immutable("loadbalancer_id", r.LoadBalancerID), immutable("listener_id", r.ListenerID),
		immutable("protocol", r.Protocol), immutable("project_id", r.ProjectID), immutable("tenant_id", r.TenantID)); err != nil {
		return err
	}
	if (r.AdminStateUp.Set && r.AdminStateUp.Null) || (r.LBAlgorithm.Set && r.LBAlgorithm.Null) {
		return domain.Invalid("admin_state_up", "admin_state_up and lb_algorithm cannot be null")
	}
	r.LoadBalancerID.apply(&s.LoadBalancerID)
	r.ListenerID.apply(&s.ListenerID)
	r.Protocol.apply(&s.Protocol)
	r.LBAlgorithm.apply(&s.LBAlgorithm)
	r.Name.apply(&s.Name)
	r.Description.apply(&s.Description)
	r.AdminStateUp.apply(&s.AdminStateUp)
	r.SessionPersistence.apply(&s.SessionPersistence)
	if s.SessionPersistence != nil && *s.SessionPersistence == (events.SessionPersistence{}) {
		s.SessionPersistence = nil
	}
	r.Tags.apply(&s.Tags)
	r.FailOpen.apply(&s.FailOpen)
	return domain.ValidatePool(*s)
}

// MemberReq is the body of POST and PUT /pools/{id}/members and one item of
// the batch update.
type MemberReq struct {
	Address        Opt[string]   `json:"address"`
	ProtocolPort   Opt[int]      `json:"protocol_port"`
	Name           Opt[string]   `json:"name"`
	Weight         Opt[int]      `json:"weight"`
	AdminStateUp   Opt[bool]     `json:"admin_state_up"`
	Backup         Opt[bool]     `json:"backup"`
	SubnetID       Opt[string]   `json:"subnet_id"`
	MonitorAddress Opt[string]   `json:"monitor_address"`
	MonitorPort    Opt[int]      `json:"monitor_port"`
	Tags           Opt[[]string] `json:"tags"`
	ProjectID      Opt[string]   `json:"project_id"`
	TenantID       Opt[string]   `json:"tenant_id"`
	RequestSRIOV   Raw           `json:"request_sriov"`
	VNICType       Raw           `json:"vnic_type"`
}

// Project returns the project_id (or tenant_id) sent, if any.
func (r *MemberReq) Project() string { return project(r.ProjectID, r.TenantID) }

// Apply applies the request to s.
func (r *MemberReq) Apply(s *events.MemberSpec, create bool) error {
	if err := firstErr(unsupported("request_sriov", r.RequestSRIOV), unsupported("vnic_type", r.VNICType)); err != nil {
		return err
	}
	if create {
		if err := firstErr(required("address", r.Address), required("protocol_port", r.ProtocolPort)); err != nil {
			return err
		}
	} else if err := firstErr(immutable("address", r.Address), immutable("protocol_port", r.ProtocolPort),
		immutable("subnet_id", r.SubnetID), immutable("project_id", r.ProjectID), immutable("tenant_id", r.TenantID)); err != nil {
		return err
	}
	if (r.AdminStateUp.Set && r.AdminStateUp.Null) || (r.Weight.Set && r.Weight.Null) {
		return domain.Invalid("weight", "weight and admin_state_up cannot be null")
	}
	r.Address.apply(&s.Address)
	r.ProtocolPort.apply(&s.ProtocolPort)
	r.Name.apply(&s.Name)
	r.Weight.apply(&s.Weight)
	r.AdminStateUp.apply(&s.AdminStateUp)
	r.Backup.apply(&s.Backup)
	r.SubnetID.apply(&s.SubnetID)
	r.MonitorAddress.apply(&s.MonitorAddress)
	r.MonitorPort.apply(&s.MonitorPort)
	r.Tags.apply(&s.Tags)
	return domain.ValidateMember(*s)
}

// MonitorReq is the body of POST and PUT /healthmonitors.
type MonitorReq struct {
	PoolID         Opt[string]   `json:"pool_id"`
	Type           Opt[string]   `json:"type"`
	Delay          Opt[int]      `json:"delay"`
	Timeout        Opt[int]      `json:"timeout"`
	MaxRetries     Opt[int]      `json:"max_retries"`
	MaxRetriesDown Opt[int]      `json:"max_retries_down"`
	HTTPMethod     Opt[string]   `json:"http_method"`
	URLPath        Opt[string]   `json:"url_path"`
	ExpectedCodes  Opt[string]   `json:"expected_codes"`
	Name           Opt[string]   `json:"name"`
	AdminStateUp   Opt[bool]     `json:"admin_state_up"`
	Tags           Opt[[]string] `json:"tags"`
	ProjectID      Opt[string]   `json:"project_id"`
	TenantID       Opt[string]   `json:"tenant_id"`
	HTTPVersion    Raw           `json:"http_version"`
	DomainName     Raw           `json:"domain_name"`
}

// Project returns the project_id (or tenant_id) sent, if any.
func (r *MonitorReq) Project() string { return project(r.ProjectID, r.TenantID) }

// Apply applies the request to s; HTTP monitors get Octavia's defaults
// (GET, "/", "200") for what the client left out.
func (r *MonitorReq) Apply(s *events.HealthMonitorSpec, create bool) error {
	if err := firstErr(unsupported("http_version", r.HTTPVersion), unsupported("domain_name", r.DomainName)); err != nil {
		return err
	}
	if create {
		if err := firstErr(required("pool_id", r.PoolID), required("type", r.Type), required("delay", r.Delay),
			required("timeout", r.Timeout), required("max_retries", r.MaxRetries)); err != nil {
			return err
		}
	} else if err := firstErr(immutable("pool_id", r.PoolID), immutable("type", r.Type), immutable("project_id", r.ProjectID),
		immutable("tenant_id", r.TenantID)); err != nil {
		return err
	}
	r.PoolID.apply(&s.PoolID)
	r.Type.apply(&s.Type)
	r.Delay.apply(&s.Delay)
	r.Timeout.apply(&s.Timeout)
	r.MaxRetries.apply(&s.MaxRetries)
	r.MaxRetriesDown.apply(&s.MaxRetriesDown)
	r.HTTPMethod.apply(&s.HTTPMethod)
	r.URLPath.apply(&s.URLPath)
	r.ExpectedCodes.apply(&s.ExpectedCodes)
	r.Name.apply(&s.Name)
	r.AdminStateUp.apply(&s.AdminStateUp)
	r.Tags.apply(&s.Tags)
	if s.Type == "HTTP" || s.Type == "HTTPS" {
		if s.HTTPMethod == "" {
			s.HTTPMethod = "GET"
		}
		if s.URLPath == "" {
			s.URLPath = "/"
		}
		if s.ExpectedCodes == "" {
			s.ExpectedCodes = "200"
		}
	}
	if !domain.ValidID(s.PoolID) {
		return domain.Invalid("pool_id", "%q is not a valid id", s.PoolID)
	}
	return domain.ValidateMonitor(*s, "")
}

// PolicyReq is the body of POST and PUT /l7policies.
type PolicyReq struct {
	ListenerID       Opt[string]   `json:"listener_id"`
	Action           Opt[string]   `json:"action"`
	Name             Opt[string]   `json:"name"`
	Description      Opt[string]   `json:"description"`
	Position         Opt[int]      `json:"position"`
	RedirectPoolID   Opt[string]   `json:"redirect_pool_id"`
	RedirectURL      Opt[string]   `json:"redirect_url"`
	RedirectPrefix   Opt[string]   `json:"redirect_prefix"`
	RedirectHTTPCode Opt[int]      `json:"redirect_http_code"`
	AdminStateUp     Opt[bool]     `json:"admin_state_up"`
	Tags             Opt[[]string] `json:"tags"`
	ProjectID        Opt[string]   `json:"project_id"`
	TenantID         Opt[string]   `json:"tenant_id"`
	Rules            Raw           `json:"rules"`
}

// Project returns the project_id (or tenant_id) sent, if any.
func (r *PolicyReq) Project() string { return project(r.ProjectID, r.TenantID) }

// Apply applies the request to s. Changing the action drops the redirect
// targets of the old action that the request did not set.
func (r *PolicyReq) Apply(s *events.L7PolicySpec, create bool) error {
	if err := unsupported("rules", r.Rules); err != nil {
		return err
	}
	if create {
		if err := firstErr(required("listener_id", r.ListenerID), required("action", r.Action)); err != nil {
			return err
		}
	} else if err := firstErr(immutable("listener_id", r.ListenerID), immutable("project_id", r.ProjectID), immutable("tenant_id", r.TenantID)); err != nil {
		return err
	}
	r.ListenerID.apply(&s.ListenerID)
	r.Action.apply(&s.Action)
	r.Name.apply(&s.Name)
	r.Description.apply(&s.Description)
	r.Position.apply(&s.Position)
	r.RedirectPoolID.apply(&s.RedirectPoolID)
	r.RedirectURL.apply(&s.RedirectURL)
	r.RedirectPrefix.apply(&s.RedirectPrefix)
	r.RedirectHTTPCode.apply(&s.RedirectHTTPCode)
	r.AdminStateUp.apply(&s.AdminStateUp)
	r.Tags.apply(&s.Tags)
	if s.Action != "REDIRECT_TO_POOL" && !r.RedirectPoolID.Set {
		s.RedirectPoolID = ""
	}
	if s.Action != "REDIRECT_TO_URL" && !r.RedirectURL.Set {
		s.RedirectURL = ""
	}
	if s.Action != "REDIRECT_PREFIX" && !r.RedirectPrefix.Set {
		s.RedirectPrefix = ""
	}
	if (s.Action == "REDIRECT_TO_URL" || s.Action == "REDIRECT_PREFIX") && s.RedirectHTTPCode == 0 {
		s.RedirectHTTPCode = 302
	}
	if s.Action != "REDIRECT_TO_URL" && s.Action != "REDIRECT_PREFIX" {
		s.RedirectHTTPCode = 0
	}
	if !domain.ValidID(s.ListenerID) {
		return domain.Invalid("listener_id", "%q is not a valid id", s.ListenerID)
	}
	return domain.ValidatePolicy(*s)
}

// RuleReq is the body of POST and PUT /l7policies/{id}/rules.
type RuleReq struct {
	Type         Opt[string]   `json:"type"`
	CompareType  Opt[string]   `json:"compare_type"`
	Key          Opt[string]   `json:"key"`
	Value        Opt[string]   `json:"value"`
	Invert       Opt[bool]     `json:"invert"`
	AdminStateUp Opt[bool]     `json:"admin_state_up"`
	Tags         Opt[[]string] `json:"tags"`
	ProjectID    Opt[string]   `json:"project_id"`
	TenantID     Opt[string]   `json:"tenant_id"`
}

// Project returns the project_id (or tenant_id) sent, if any.
func (r *RuleReq) Project() string { return project(r.ProjectID, r.TenantID) }

// Apply applies the request to s.
func (r *RuleReq) Apply(s *events.L7RuleSpec, create bool) error {
	if create {
		if err := firstErr(required("type", r.Type), required("compare_type", r.CompareType), required("value", r.Value)); err != nil {
			return err
		}
	} else if err := firstErr(immutable("project_id", r.ProjectID), immutable("tenant_id", r.TenantID)); err != nil {
		return err
	}
	r.Type.apply(&s.Type)
	r.CompareType.apply(&s.CompareType)
	r.Key.apply(&s.Key)
	r.Value.apply(&s.Value)
	r.Invert.apply(&s.Invert)
	r.AdminStateUp.apply(&s.AdminStateUp)
	r.Tags.apply(&s.Tags)
	return domain.ValidateRule(*s)
}

// QuotaReq is the body of PUT /quotas/{project_id}; Octavia accepts both the
// old (load_balancer, health_monitor) and the new names.
type QuotaReq struct {
	LoadBalancer   Opt[int] `json:"loadbalancer"`
	LoadBalancerV1 Opt[int] `json:"load_balancer"`
	Listener       Opt[int] `json:"listener"`
	Pool           Opt[int] `json:"pool"`
	Member         Opt[int] `json:"member"`
	HealthMonitor  Opt[int] `json:"healthmonitor"`
	HealthMonV1    Opt[int] `json:"health_monitor"`
	L7Policy       Opt[int] `json:"l7policy"`
	L7Rule         Opt[int] `json:"l7rule"`
}

// Map returns the quotas sent (null means unlimited, -1).
func (r *QuotaReq) Map() map[string]int {
	out := map[string]int{}
	put := func(k string, o Opt[int]) {
		switch {
		case o.Has():
			out[k] = o.V
		case o.Set:
			out[k] = -1
		}
	}
	put("loadbalancer", r.LoadBalancerV1)
	put("loadbalancer", r.LoadBalancer)
	put("listener", r.Listener)
	put("pool", r.Pool)
	put("member", r.Member)
	put("healthmonitor", r.HealthMonV1)
	put("healthmonitor", r.HealthMonitor)
	put("l7policy", r.L7Policy)
	put("l7rule", r.L7Rule)
	return out
}
