package events

import "time"

// Aggregate types. The load balancer aggregate owns its whole tree (listeners,
// pools, members, monitors, L7 policies) so that one optimistic-concurrency
// check guards every change to it, as Octavia locks the load balancer.
const (
	AggLoadBalancer = "loadbalancer"
	AggVIPPool      = "vippool"
	AggNode         = "node"
	AggLVSPair      = "lvspair"
	AggAlarm        = "alarm"
	AggQuota        = "quota"
	AggScalePolicy  = "scalepolicy"
)

// Event type names (past tense). Each is registered in the catalog with its
// payload type and current schema version.
const (
	TypeELBRequested         = "ELBRequested"
	TypeELBUpdated           = "ELBUpdated"
	TypeVIPAllocated         = "VIPAllocated"
	TypeVIPReleased          = "VIPReleased"
	TypeAllocationFailed     = "AllocationFailed"
	TypeVMRequested          = "VMRequested"
	TypeVMReady              = "VMReady"
	TypeVMFailed             = "VMFailed"
	TypeVMDeleted            = "VMDeleted"
	TypeNodeClaimed          = "NodeClaimed"
	TypeListenerCreated      = "ListenerCreated"
	TypeListenerUpdated      = "ListenerUpdated"
	TypeListenerDeleted      = "ListenerDeleted"
	TypePoolCreated          = "PoolCreated"
	TypePoolUpdated          = "PoolUpdated"
	TypePoolDeleted          = "PoolDeleted"
	TypeMemberAdded          = "MemberAdded"
	TypeMemberUpdated        = "MemberUpdated"
	TypeMemberRemoved        = "MemberRemoved"
	TypeHealthMonitorSet     = "HealthMonitorSet"
	TypeHealthMonitorRemoved = "HealthMonitorRemoved"
	TypeL7PolicySet          = "L7PolicySet"
	TypeL7PolicyRemoved      = "L7PolicyRemoved"
	TypeL7RuleSet            = "L7RuleSet"
	TypeL7RuleRemoved        = "L7RuleRemoved"
	TypeConfigPublished      = "ConfigPublished"
	TypeConfigApplied        = "ConfigApplied"
	TypeELBActive            = "ELBActive"
	TypeELBFailed            = "ELBFailed"
	TypeELBDeleteRequested   = "ELBDeleteRequested"
	TypeELBDeleted           = "ELBDeleted"
	TypeFailoverRequested    = "FailoverRequested"
	TypeRealServerUnhealthy  = "RealServerUnhealthy"
	TypeRealServerHealthy    = "RealServerHealthy"
	TypeNodeLost             = "NodeLost"
	TypeLVSPairRegistered    = "LVSPairRegistered"
	TypeVRRPStateChanged     = "VRRPStateChanged"
	TypeScaleOutDecided      = "ScaleOutDecided"
	TypeScaleInDecided       = "ScaleInDecided"
	TypeScalePolicySet       = "ScalePolicySet"
	TypeAlarmRaised          = "AlarmRaised"
	TypeAlarmResolved        = "AlarmResolved"
	TypeQuotaSet             = "QuotaSet"
	TypeQuotaReset           = "QuotaReset"
)

// ELBRequested starts the create workflow of a load balancer.
type ELBRequested struct {
	Spec LoadBalancerSpec `json:"spec"`
	// Deadline is when the whole create must have finished (ACTIVE or ERROR).
	Deadline time.Time `json:"deadline"`
}

// ELBUpdated records a change of the load balancer's own fields.
type ELBUpdated struct {
	Spec LoadBalancerSpec `json:"spec"`
}

// VIPAllocated hands one address of a VIP pool to one load balancer. It is
// appended to the pool's aggregate so that concurrent allocators conflict.
type VIPAllocated struct {
	LoadBalancerID   string `json:"loadbalancer_id"`
	Pool             string `json:"pool"`
	Address          string `json:"address"`
	LVSPair          string `json:"lvs_pair,omitempty"`
	AvailabilityZone string `json:"availability_zone,omitempty"`
}

// VIPReleased returns an address to its pool.
type VIPReleased struct {
	LoadBalancerID string `json:"loadbalancer_id"`
	Pool           string `json:"pool"`
	Address        string `json:"address"`
}

// AllocationFailed says no VIP could be found for a load balancer.
type AllocationFailed struct {
	LoadBalancerID string `json:"loadbalancer_id"`
	Reason         string `json:"reason"`
}

// VMRequested asks the compute driver for one tengine node.
type VMRequested struct {
	LoadBalancerID   string    `json:"loadbalancer_id"`
	NodeID           string    `json:"node_id"`
	Flavor           string    `json:"flavor,omitempty"`
	Image            string    `json:"image,omitempty"`
	AvailabilityZone string    `json:"availability_zone,omitempty"`
	Deadline         time.Time `json:"deadline"`
}

// VMReady says a node booted and has an address.
type VMReady struct {
	LoadBalancerID string `json:"loadbalancer_id"`
	NodeID         string `json:"node_id"`
	ServerID       string `json:"server_id,omitempty"`
	Address        string `json:"address"`
}

// VMFailed says a node could not be built.
type VMFailed struct {
	LoadBalancerID string `json:"loadbalancer_id"`
	NodeID         string `json:"node_id"`
	Reason         string `json:"reason"`
}

// VMDeleted says a node is gone.
type VMDeleted struct {
	LoadBalancerID string `json:"loadbalancer_id"`
	NodeID         string `json:"node_id"`
	ServerID       string `json:"server_id,omitempty"`
}

// NodeClaimed hands an idle pre-provisioned (warm pool) node to a load
// balancer. It is appended to the warm pool's node aggregate so that
// concurrent claims conflict and each node goes to exactly one load balancer.
type NodeClaimed struct {
	NodeID         string `json:"node_id"`
	LoadBalancerID string `json:"loadbalancer_id"`
}

// ListenerCreated, ListenerUpdated carry the listener's full spec.
type ListenerCreated struct {
	ListenerID string       `json:"listener_id"`
	Spec       ListenerSpec `json:"spec"`
}

// ListenerUpdated carries the listener's spec after the update.
type ListenerUpdated ListenerCreated

// ListenerDeleted removes a listener.
type ListenerDeleted struct {
	ListenerID string `json:"listener_id"`
}

// PoolCreated carries the pool's full spec.
type PoolCreated struct {
	PoolID string   `json:"pool_id"`
	Spec   PoolSpec `json:"spec"`
}

// PoolUpdated carries the pool's spec after the update.
type PoolUpdated PoolCreated

// PoolDeleted removes a pool with its members and monitor.
type PoolDeleted struct {
	PoolID string `json:"pool_id"`
}

// MemberAdded carries the member's full spec.
type MemberAdded struct {
	MemberID string     `json:"member_id"`
	Spec     MemberSpec `json:"spec"`
}

// MemberUpdated carries the member's spec after the update.
type MemberUpdated MemberAdded

// MemberRemoved removes a member from its pool.
type MemberRemoved struct {
	MemberID string `json:"member_id"`
	PoolID   string `json:"pool_id"`
}

// HealthMonitorSet creates or replaces a pool's health monitor.
type HealthMonitorSet struct {
	HealthMonitorID string            `json:"healthmonitor_id"`
	Spec            HealthMonitorSpec `json:"spec"`
}

// HealthMonitorRemoved deletes a health monitor.
type HealthMonitorRemoved struct {
	HealthMonitorID string `json:"healthmonitor_id"`
	PoolID          string `json:"pool_id"`
}

// L7PolicySet creates or replaces an L7 policy.
type L7PolicySet struct {
	L7PolicyID string       `json:"l7policy_id"`
	Spec       L7PolicySpec `json:"spec"`
}

// L7PolicyRemoved deletes an L7 policy and its rules.
type L7PolicyRemoved struct {
	L7PolicyID string `json:"l7policy_id"`
}

// L7RuleSet creates or replaces an L7 rule.
type L7RuleSet struct {
	L7RuleID string     `json:"l7rule_id"`
	Spec     L7RuleSpec `json:"spec"`
}

// L7RuleRemoved deletes an L7 rule.
type L7RuleRemoved struct {
	L7RuleID   string `json:"l7rule_id"`
	L7PolicyID string `json:"l7policy_id"`
}

// ConfigPublished says a new desired data-plane config version was written
// for the nodes of a load balancer.
type ConfigPublished struct {
	LoadBalancerID string    `json:"loadbalancer_id"`
	Version        uint64    `json:"version"`
	Nodes          []string  `json:"nodes"`
	Deadline       time.Time `json:"deadline"`
	// NodeVersions is the NodeConfig version written for each node (shared
	// LVS nodes carry every load balancer of their pair, so their versions
	// differ from Version); ConfigApplied for a node counts once the node
	// reports at least this version.
	NodeVersions map[string]uint64 `json:"node_versions,omitempty"`
}

// ConfigApplied says one node runs a given config version.
type ConfigApplied struct {
	LoadBalancerID string `json:"loadbalancer_id"`
	NodeID         string `json:"node_id"`
	Version        uint64 `json:"version"`
}

// ELBActive says the load balancer carries traffic with the given config.
type ELBActive struct {
	Version uint64   `json:"version"`
	VIP     string   `json:"vip"`
	Nodes   []string `json:"nodes"`
}

// StepLogEntry is one line of a workflow's step log.
type StepLogEntry struct {
	Time    time.Time `json:"time"`
	Step    string    `json:"step"`
	Message string    `json:"message"`
}

// ELBFailed ends a workflow in ERROR after everything was rolled back.
type ELBFailed struct {
	Reason string         `json:"reason"`
	Step   string         `json:"step"`
	Log    []StepLogEntry `json:"log,omitempty"`
}

// ELBDeleteRequested starts the delete workflow (cascade when Cascade is set).
type ELBDeleteRequested struct {
	Cascade  bool      `json:"cascade"`
	Deadline time.Time `json:"deadline"`
}

// ELBDeleted ends a load balancer's life.
type ELBDeleted struct{}

// FailoverRequested asks for every node of a load balancer to be replaced.
type FailoverRequested struct {
	Deadline time.Time `json:"deadline"`
}

// RealServerUnhealthy says a health checker took a target out of rotation.
type RealServerUnhealthy struct {
	LoadBalancerID string `json:"loadbalancer_id"`
	PoolID         string `json:"pool_id,omitempty"`
	MemberID       string `json:"member_id,omitempty"`
	Address        string `json:"address"`
	Port           int    `json:"port"`
	NodeID         string `json:"node_id"`
	Reason         string `json:"reason"`
}

// RealServerHealthy says a target is back in rotation.
type RealServerHealthy struct {
	LoadBalancerID string `json:"loadbalancer_id"`
	PoolID         string `json:"pool_id,omitempty"`
	MemberID       string `json:"member_id,omitempty"`
	Address        string `json:"address"`
	Port           int    `json:"port"`
	NodeID         string `json:"node_id"`
}

// NodeLost says a node stopped sending heartbeats.
type NodeLost struct {
	LoadBalancerID string    `json:"loadbalancer_id,omitempty"`
	NodeID         string    `json:"node_id"`
	LastSeen       time.Time `json:"last_seen"`
}

// LVSPairRegistered records an L4 node pair that can carry VIPs.
type LVSPairRegistered struct {
	Pair             string   `json:"pair"`
	Nodes            []string `json:"nodes"`
	AvailabilityZone string   `json:"availability_zone,omitempty"`
	Capacity         int      `json:"capacity"`
}

// VRRPStateChanged records an L4 node's VRRP state (MASTER, BACKUP, FAULT).
type VRRPStateChanged struct {
	Pair   string `json:"pair"`
	NodeID string `json:"node_id"`
	State  string `json:"state"`
}

// ScaleOutDecided adds tengine nodes to a load balancer.
type ScaleOutDecided struct {
	From   int    `json:"from"`
	To     int    `json:"to"`
	Reason string `json:"reason"`
}

// ScaleInDecided removes tengine nodes from a load balancer after draining.
type ScaleInDecided struct {
	From   int      `json:"from"`
	To     int      `json:"to"`
	Nodes  []string `json:"nodes,omitempty"`
	Reason string   `json:"reason"`
}

// ScalePolicySet sets a load balancer's scaling policy.
type ScalePolicySet struct {
	LoadBalancerID  string `json:"loadbalancer_id"`
	Min             int    `json:"min"`
	Max             int    `json:"max"`
	CooldownSeconds int    `json:"cooldown_seconds"`
	PreWarm         int    `json:"pre_warm,omitempty"`
}

// AlarmRaised says a rule's condition held for its number of periods.
type AlarmRaised struct {
	Rule       string            `json:"rule"`
	Severity   string            `json:"severity"`
	Resource   string            `json:"resource"`
	Dimensions map[string]string `json:"dimensions,omitempty"`
	Value      float64           `json:"value"`
	Threshold  float64           `json:"threshold"`
	Message    string            `json:"message"`
}

// AlarmResolved says a raised alarm's condition cleared.
type AlarmResolved struct {
	Rule     string  `json:"rule"`
	Resource string  `json:"resource"`
	Value    float64 `json:"value"`
	Message  string  `json:"message"`
}

// QuotaSet sets a project's quotas; -1 is unlimited, absent keeps the default.
type QuotaSet struct {
	Quotas map[string]int `json:"quotas"`
}

// QuotaReset returns a project's quotas to the defaults.
type QuotaReset struct{}

func init() {
	register(TypeELBRequested, 1, func() any { return new(ELBRequested) })
	register(TypeELBUpdated, 1, func() any { return new(ELBUpdated) })
	register(TypeVIPAllocated, 1, func() any { return new(VIPAllocated) })
	register(TypeVIPReleased, 1, func() any { return new(VIPReleased) })
	register(TypeAllocationFailed, 1, func() any { return new(AllocationFailed) })
	register(TypeVMRequested, 1, func() any { return new(VMRequested) })
	register(TypeVMReady, 1, func() any { return new(VMReady) })
	register(TypeVMFailed, 1, func() any { return new(VMFailed) })
	register(TypeVMDeleted, 1, func() any { return new(VMDeleted) })
	register(TypeNodeClaimed, 1, func() any { return new(NodeClaimed) })
	register(TypeListenerCreated, 1, func() any { return new(ListenerCreated) })
	register(TypeListenerUpdated, 1, func() any { return new(ListenerUpdated) })
	register(TypeListenerDeleted, 1, func() any { return new(ListenerDeleted) })
	register(TypePoolCreated, 1, func() any { return new(PoolCreated) })
	register(TypePoolUpdated, 1, func() any { return new(PoolUpdated) })
	register(TypePoolDeleted, 1, func() any { return new(PoolDeleted) })
	register(TypeMemberAdded, 2, func() any { return new(MemberAdded) }, upcastMemberV1)
	register(TypeMemberUpdated, 1, func() any { return new(MemberUpdated) })
	register(TypeMemberRemoved, 1, func() any { return new(MemberRemoved) })
	register(TypeHealthMonitorSet, 1, func() any { return new(HealthMonitorSet) })
	register(TypeHealthMonitorRemoved, 1, func() any { return new(HealthMonitorRemoved) })
	register(TypeL7PolicySet, 1, func() any { return new(L7PolicySet) })
	register(TypeL7PolicyRemoved, 1, func() any { return new(L7PolicyRemoved) })
	register(TypeL7RuleSet, 1, func() any { return new(L7RuleSet) })
	register(TypeL7RuleRemoved, 1, func() any { return new(L7RuleRemoved) })
	register(TypeConfigPublished, 1, func() any { return new(ConfigPublished) })
	register(TypeConfigApplied, 1, func() any { return new(ConfigApplied) })
	register(TypeELBActive, 1, func() any { return new(ELBActive) })
	register(TypeELBFailed, 1, func() any { return new(ELBFailed) })
	register(TypeELBDeleteRequested, 1, func() any { return new(ELBDeleteRequested) })
	register(TypeELBDeleted, 1, func() any { return new(ELBDeleted) })
	register(TypeFailoverRequested, 1, func() any { return new(FailoverRequested) })
	register(TypeRealServerUnhealthy, 1, func() any { return new(RealServerUnhealthy) })
	register(TypeRealServerHealthy, 1, func() any { return new(RealServerHealthy) })
	register(TypeNodeLost, 1, func() any { return new(NodeLost) })
	register(TypeLVSPairRegistered, 1, func() any { return new(LVSPairRegistered) })
	register(TypeVRRPStateChanged, 1, func() any { return new(VRRPStateChanged) })
	register(TypeScaleOutDecided, 1, func() any { return new(ScaleOutDecided) })
	register(TypeScaleInDecided, 1, func() any { return new(ScaleInDecided) })
	register(TypeScalePolicySet, 1, func() any { return new(ScalePolicySet) })
	register(TypeAlarmRaised, 1, func() any { return new(AlarmRaised) })
	register(TypeAlarmResolved, 1, func() any { return new(AlarmResolved) })
	register(TypeQuotaSet, 1, func() any { return new(QuotaSet) })
	register(TypeQuotaReset, 1, func() any { return new(QuotaReset) })
}
