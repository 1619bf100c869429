package domain

import (
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/elbcloud/elb/events"
)

// Enumerations accepted by the API.
var (
	ListenerProtocols = []string{"TCP", "UDP", "HTTP", "HTTPS", "TERMINATED_HTTPS", "SCTP"}
	PoolProtocols     = []string{"TCP", "UDP", "HTTP", "HTTPS", "PROXY", "PROXYV2", "SCTP"}
	LBAlgorithms      = []string{"ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP", "SOURCE_IP_PORT"}
	Schedulers        = []string{"rr", "wrr", "lc", "wlc", "sh", "dh", "sed", "nq", "mh"}
	ForwardMethods    = []string{"DR", "NAT", "TUN"}
	PersistenceTypes  = []string{"SOURCE_IP", "HTTP_COOKIE", "APP_COOKIE"}
	MonitorTypes      = []string{"HTTP", "HTTPS", "PING", "TCP", "TLS-HELLO", "UDP-CONNECT", "SCTP"}
	HTTPMethods       = []string{"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
	L7Actions         = []string{"REDIRECT_TO_POOL", "REDIRECT_TO_URL", "REDIRECT_PREFIX", "REJECT"}
	L7RuleTypes       = []string{"HOST_NAME", "PATH", "FILE_TYPE", "HEADER", "COOKIE", "SSL_CONN_HAS_CERT", "SSL_VERIFY_RESULT", "SSL_DN_FIELD"}
	L7CompareTypes    = []string{"REGEX", "STARTS_WITH", "ENDS_WITH", "CONTAINS", "EQUAL_TO"}
	RedirectCodes     = []int{301, 302, 303, 307, 308}
)

// Limits on free-text fields.
const (
	MaxNameLen        = 255
	MaxDescriptionLen = 255
	MaxTagLen         = 255
	MaxTags           = 50
	MaxCIDRs          = 100
	MaxTimeoutMS      = 24 * 3600 * 1000
	MaxL7Nodes        = 100
)

func oneOf[T comparable](field string, v T, allowed []T) error {
	if !slices.Contains(allowed, v) {
		return Invalid(field, "value %v is not one of %v", v, allowed)
	}
	return nil
}

func text(field, v string, max int) error {
	if !utf8.ValidString(v) {
		return Invalid(field, "not valid UTF-8")
	}
	if utf8.RuneCountInString(v) > max {
		return Invalid(field, "longer than %d characters", max)
	}
	for _, r := range v {
		if r == 0 {
			return Invalid(field, "contains a NUL character")
		}
	}
	return nil
}

// ValidateTags checks a tag list.
func ValidateTags(tags []string) error {
	if len(tags) > MaxTags {
		return Invalid("tags", "more than %d tags", MaxTags)
	}
	for _, t := range tags {
		if t == "" {
			return Invalid("tags", "empty tag")
		}
		if strings.Contains(t, ",") {
			return Invalid("tags", "tag %q contains a comma", t)
		}
		if err := text("tags", t, MaxTagLen); err != nil {
			return err
		}
	}
	return nil
}

func port(field string, p int) error {
	if p < 1 || p > 65535 {
		return Invalid(field, "%d is not a port (1-65535)", p)
	}
	return nil
}

// ValidID reports whether s can be a resource id (a subject token without
// surprises: letters, digits, '-' and '_', at most 64 characters).
func ValidID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func id(field, v string) error {
	if v != "" && !ValidID(v) {
		return Invalid(field, "%q is not a valid id", v)
	}
	return nil
}

// ValidateLoadBalancer checks a load balancer's own fields.
func ValidateLoadBalancer(s events.LoadBalancerSpec) error {
	for _, c := range []error{
		text("name", s.Name, MaxNameLen), text("description", s.Description, MaxDescriptionLen),
		ValidateTags(s.Tags), id("vip_subnet_id", s.VIPSubnetID), id("vip_network_id", s.VIPNetworkID),
		id("vip_port_id", s.VIPPortID), id("flavor_id", s.FlavorID), text("availability_zone", s.AvailabilityZone, MaxNameLen),
	} {
		if c != nil {
			return c
		}
	}
	if s.VIPAddress != "" {
		a, err := netip.ParseAddr(s.VIPAddress)
		if err != nil || a.Zone() != "" {
			return Invalid("vip_address", "%q is not an IP address", s.VIPAddress)
		}
	}
	if s.Provider != "" && s.Provider != "elb" && s.Provider != "amphora" && s.Provider != "octavia" {
		return Invalid("provider", "provider %q is not enabled (use \"elb\")", s.Provider)
	}
	if s.L7Nodes < 0 || s.L7Nodes > MaxL7Nodes {
		return Invalid("l7_nodes", "must be between 0 and %d", MaxL7Nodes)
	}
	if s.MinL7Nodes < 0 || s.MinL7Nodes > MaxL7Nodes || s.MaxL7Nodes < 0 || s.MaxL7Nodes > MaxL7Nodes {
		return Invalid("min_l7_nodes", "min_l7_nodes and max_l7_nodes must be between 0 and %d", MaxL7Nodes)
	}
	if s.MaxL7Nodes > 0 && s.MinL7Nodes > s.MaxL7Nodes {
		return Invalid("min_l7_nodes", "min_l7_nodes %d is above max_l7_nodes %d", s.MinL7Nodes, s.MaxL7Nodes)
	}
	if s.L7Nodes > 0 && ((s.MinL7Nodes > 0 && s.L7Nodes < s.MinL7Nodes) || (s.MaxL7Nodes > 0 && s.L7Nodes > s.MaxL7Nodes)) {
		return Invalid("l7_nodes", "l7_nodes %d is outside [min_l7_nodes, max_l7_nodes]", s.L7Nodes)
	}
	return nil
}

var headerName = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// ValidateListener checks a listener's fields.
func ValidateListener(s events.ListenerSpec) error {
	for _, c := range []error{
		text("name", s.Name, MaxNameLen), text("description", s.Description, MaxDescriptionLen), ValidateTags(s.Tags),
		oneOf("protocol", s.Protocol, ListenerProtocols), port("protocol_port", s.ProtocolPort), id("default_pool_id", s.DefaultPoolID),
	} {
		if c != nil {
			return c
		}
	}
	if s.ConnectionLimit < -1 || s.ConnectionLimit > 1<<30 {
		return Invalid("connection_limit", "must be -1 (unlimited) or between 0 and %d", 1<<30)
	}
	for f, v := range map[string]int{"timeout_client_data": s.TimeoutClientData, "timeout_member_connect": s.TimeoutMemberConnect,
		"timeout_member_data": s.TimeoutMemberData, "timeout_tcp_inspect": s.TimeoutTCPInspect} {
		if v < 0 || v > MaxTimeoutMS {
			return Invalid(f, "must be between 0 and %d milliseconds", MaxTimeoutMS)
		}
	}
	if len(s.InsertHeaders) > 0 && s.Protocol != "HTTP" && s.Protocol != "TERMINATED_HTTPS" {
		return Invalid("insert_headers", "only HTTP listeners insert headers")
	}
	for k, v := range s.InsertHeaders {
		if !headerName.MatchString(k) {
			return Invalid("insert_headers", "%q is not a header name", k)
		}
		if err := text("insert_headers", v, 255); err != nil {
			return err
		}
	}
	if len(s.AllowedCIDRs) > MaxCIDRs {
		return Invalid("allowed_cidrs", "more than %d CIDRs", MaxCIDRs)
	}
	for _, c := range s.AllowedCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return Invalid("allowed_cidrs", "%q is not a CIDR", c)
		}
		if p.Masked() != p {
			return Invalid("allowed_cidrs", "%q has host bits set (use %s)", c, p.Masked())
		}
	}
	if s.Scheduler != "" {
		if err := oneOf("scheduler", s.Scheduler, Schedulers); err != nil {
			return err
		}
	}
	if s.ForwardMethod != "" {
		if err := oneOf("forward_method", s.ForwardMethod, ForwardMethods); err != nil {
			return err
		}
		if s.ForwardMethod == "DR" && (s.Protocol == "HTTP" || s.Protocol == "HTTPS" || s.Protocol == "TERMINATED_HTTPS") {
			// HTTP listeners go through the tengine tier, which the LVS tier
			// reaches in NAT; DR applies to TCP/UDP listeners only.
			return Invalid("forward_method", "DR applies to TCP, UDP and SCTP listeners only")
		}
	}
	if s.PersistenceTimeout < 0 || s.PersistenceTimeout > 86400 {
		return Invalid("persistence_timeout", "must be between 0 and 86400 seconds")
	}
	if s.ConnectionDrainTimeout < 0 || s.ConnectionDrainTimeout > 3600 {
		return Invalid("connection_drain_timeout", "must be between 0 and 3600 seconds")
	}
	return nil
}

var cookieName = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_` + "`" + `|~-]{1,255}$`)

// ValidatePool checks a pool's fields.
func ValidatePool(s events.PoolSpec) error {
	for _, c := range []error{
		text("name", s.Name, MaxNameLen), text("description", s.Description, MaxDescriptionLen), ValidateTags(s.Tags),
		oneOf("protocol", s.Protocol, PoolProtocols), oneOf("lb_algorithm", s.LBAlgorithm, LBAlgorithms),
		id("listener_id", s.ListenerID), id("loadbalancer_id", s.LoadBalancerID),
	} {
		if c != nil {
			return c
		}
	}
	if sp := s.SessionPersistence; sp != nil {
		if err := oneOf("session_persistence.type", sp.Type, PersistenceTypes); err != nil {
			return err
		}
		switch sp.Type {
		case "APP_COOKIE":
			if !cookieName.MatchString(sp.CookieName) {
				return Invalid("session_persistence.cookie_name", "APP_COOKIE needs a valid cookie_name")
			}
		case "HTTP_COOKIE":
			if sp.CookieName != "" && !cookieName.MatchString(sp.CookieName) {
				return Invalid("session_persistence.cookie_name", "%q is not a cookie name", sp.CookieName)
			}
		case "SOURCE_IP":
			if sp.CookieName != "" {
				return Invalid("session_persistence.cookie_name", "only cookie persistence takes a cookie_name")
			}
		}
		if sp.Type != "SOURCE_IP" && s.Protocol != "HTTP" && s.Protocol != "HTTPS" && s.Protocol != "PROXY" && s.Protocol != "PROXYV2" {
			return Invalid("session_persistence.type", "%s needs an HTTP pool", sp.Type)
		}
		if sp.PersistenceTimeout < 0 || sp.PersistenceTimeout > 86400 {
			return Invalid("session_persistence.persistence_timeout", "must be between 0 and 86400 seconds")
		}
		if sp.PersistenceGranularity != "" {
			p, err := netip.ParseAddr(sp.PersistenceGranularity)
			if err != nil || !p.Is4() {
				return Invalid("session_persistence.persistence_granularity", "%q is not an IPv4 netmask", sp.PersistenceGranularity)
			}
		}
	}
	return nil
}

// ValidateMember checks a member's fields.
func ValidateMember(s events.MemberSpec) error {
	for _, c := range []error{
		text("name", s.Name, MaxNameLen), ValidateTags(s.Tags), port("protocol_port", s.ProtocolPort), id("subnet_id", s.SubnetID),
	} {
		if c != nil {
			return c
		}
	}
	a, err := netip.ParseAddr(s.Address)
	if err != nil || a.Zone() != "" {
		return Invalid("address", "%q is not an IP address", s.Address)
	}
	if a.IsUnspecified() || a.IsMulticast() {
		return Invalid("address", "%s cannot be a member address", s.Address)
	}
	if s.Weight < 0 || s.Weight > 256 {
		return Invalid("weight", "%d is not between 0 and 256", s.Weight)
	}
	if s.MonitorAddress != "" {
		m, err := netip.ParseAddr(s.MonitorAddress)
		if err != nil || m.Zone() != "" {
			return Invalid("monitor_address", "%q is not an IP address", s.MonitorAddress)
		}
		if m.Is4() != a.Is4() {
			return Invalid("monitor_address", "monitor_address and address must be of the same IP family")
		}
	}
	if s.MonitorPort != 0 {
		if err := port("monitor_port", s.MonitorPort); err != nil {
			return err
		}
	}
	return nil
}

var expectedCodes = regexp.MustCompile(`^(\d{3}(-\d{3})?)(,\d{3}(-\d{3})?)*$`)

// ValidateMonitor checks a health monitor's fields against its pool's protocol.
func ValidateMonitor(s events.HealthMonitorSpec, poolProtocol string) error {
	for _, c := range []error{
		text("name", s.Name, MaxNameLen), ValidateTags(s.Tags), oneOf("type", s.Type, MonitorTypes),
	} {
		if c != nil {
			return c
		}
	}
	if s.Delay < 1 || s.Delay > 86400 {
		return Invalid("delay", "must be between 1 and 86400 seconds")
	}
	if s.Timeout < 1 || s.Timeout > 86400 {
		return Invalid("timeout", "must be between 1 and 86400 seconds")
	}
	if s.Timeout >= s.Delay {
		return Invalid("timeout", "timeout %d must be less than delay %d", s.Timeout, s.Delay)
	}
	if s.MaxRetries < 1 || s.MaxRetries > 10 {
		return Invalid("max_retries", "must be between 1 and 10")
	}
	if s.MaxRetriesDown < 1 || s.MaxRetriesDown > 10 {
		return Invalid("max_retries_down", "must be between 1 and 10")
	}
	http := s.Type == "HTTP" || s.Type == "HTTPS"
	if !http && (s.HTTPMethod != "" || s.URLPath != "" || s.ExpectedCodes != "") {
		return Invalid("type", "http_method, url_path and expected_codes need an HTTP or HTTPS monitor")
	}
	if http {
		if err := oneOf("http_method", s.HTTPMethod, HTTPMethods); err != nil {
			return err
		}
		u, err := url.ParseRequestURI(s.URLPath)
		if err != nil || !strings.HasPrefix(s.URLPath, "/") || u.Host != "" || len(s.URLPath) > 2048 {
			return Invalid("url_path", "%q is not a URL path", s.URLPath)
		}
		if !expectedCodes.MatchString(s.ExpectedCodes) {
			return Invalid("expected_codes", "%q is not a code, list or range such as 200, 200,202 or 200-204", s.ExpectedCodes)
		}
		for _, part := range strings.Split(s.ExpectedCodes, ",") {
			lo, hi, _ := strings.Cut(part, "-")
			l, _ := strconv.Atoi(lo)
			h := l
			if hi != "" {
				h, _ = strconv.Atoi(hi)
			}
			if l < 100 || h > 599 || h < l {
				return Invalid("expected_codes", "%q is not a valid HTTP status range", part)
			}
		}
	}
	switch poolProtocol {
	case "":
		// Pool not known yet: the aggregate checks again with it.
	case "UDP":
		if s.Type != "UDP-CONNECT" && s.Type != "HTTP" && s.Type != "TCP" && s.Type != "PING" {
			return Invalid("type", "a UDP pool needs a UDP-CONNECT, HTTP, TCP or PING monitor")
		}
	case "SCTP":
	default:
		if s.Type == "UDP-CONNECT" {
			return Invalid("type", "UDP-CONNECT monitors need a UDP pool")
		}
	}
	return nil
}

// ValidatePolicy checks an L7 policy's fields.
func ValidatePolicy(s events.L7PolicySpec) error {
	for _, c := range []error{
		text("name", s.Name, MaxNameLen), text("description", s.Description, MaxDescriptionLen), ValidateTags(s.Tags),
		oneOf("action", s.Action, L7Actions), id("redirect_pool_id", s.RedirectPoolID),
	} {
		if c != nil {
			return c
		}
	}
	if s.Position < 0 || s.Position > 2147483647 {
		return Invalid("position", "must be positive")
	}
	switch s.Action {
	case "REDIRECT_TO_POOL":
		if s.RedirectPoolID == "" || s.RedirectURL != "" || s.RedirectPrefix != "" {
			return Invalid("redirect_pool_id", "REDIRECT_TO_POOL needs redirect_pool_id and nothing else")
		}
	case "REDIRECT_TO_URL", "REDIRECT_PREFIX":
		f, v := "redirect_url", s.RedirectURL
		if s.Action == "REDIRECT_PREFIX" {
			f, v = "redirect_prefix", s.RedirectPrefix
		}
		u, err := url.Parse(v)
		if v == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(v) > 2048 {
			return Invalid(f, "%s needs an absolute http(s) URL", s.Action)
		}
		if s.RedirectPoolID != "" {
			return Invalid("redirect_pool_id", "only REDIRECT_TO_POOL takes a pool")
		}
		if s.RedirectHTTPCode != 0 {
			if err := oneOf("redirect_http_code", s.RedirectHTTPCode, RedirectCodes); err != nil {
				return err
			}
		}
	case "REJECT":
		if s.RedirectPoolID != "" || s.RedirectURL != "" || s.RedirectPrefix != "" {
			return Invalid("action", "REJECT takes no redirect target")
		}
	}
	return nil
}

// ValidateRule checks an L7 rule's fields.
func ValidateRule(s events.L7RuleSpec) error {
	for _, c := range []error{
		ValidateTags(s.Tags), oneOf("type", s.Type, L7RuleTypes), oneOf("compare_type", s.CompareType, L7CompareTypes),
		text("value", s.Value, 255), text("key", s.Key, 255),
	} {
		if c != nil {
			return c
		}
	}
	if s.Value == "" {
		return Invalid("value", "must not be empty")
	}
	if strings.ContainsAny(s.Value, "\"'\r\n\t ") && s.CompareType != "REGEX" {
		return Invalid("value", "must not contain quotes or whitespace")
	}
	if s.CompareType == "REGEX" {
		if _, err := regexp.Compile(s.Value); err != nil {
			return Invalid("value", "not a valid regular expression")
		}
	}
	switch s.Type {
	case "HEADER", "COOKIE", "SSL_DN_FIELD":
		if s.Key == "" {
			return Invalid("key", "%s rules need a key", s.Type)
		}
	default:
		if s.Key != "" {
			return Invalid("key", "%s rules take no key", s.Type)
		}
	}
	return nil
}
