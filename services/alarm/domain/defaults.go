package domain

import "github.com/elbcloud/elb/events"

// Built-in rule names.
const (
	RuleAgentAlive          = "agent-alive"
	RuleRealServerUnhealthy = "real-server-unhealthy"
)

// DefaultAgentTimeout is seed 001's agent check period: an agent silent for
// five seconds is alarmed.
const DefaultAgentTimeout = 5.0

// DefaultRules is the built-in rule set from seed 001's alarm tables: the
// general node items (CPU, memory, network out/in, checked against a
// threshold), the L4/L7 items (connections, unusual TCP states such as
// CLOSE_WAIT and FIN_WAIT2), real server unhealthy (alarm at once), agent
// alive (5 s) and ELB healthy (three failed checks: no healthy member behind
// a listener for three periods).
func DefaultRules() []Rule {
	node := map[string]string{events.DimNode: "*"}
	perNode := []string{events.DimLoadBalancer, events.DimListener}
	return []Rule{
		{Name: "node-cpu-high", Kind: KindMetric, Metric: events.MetricNodeCPUUtilization, Compare: GreaterThan, Threshold: 90,
			Periods: 3, Severity: SeverityWarning, Dimensions: node, Without: perNode, Description: "node CPU above 90%"},
		{Name: "node-memory-high", Kind: KindMetric, Metric: events.MetricNodeMemoryUtilization, Compare: GreaterThan, Threshold: 90,
			Periods: 3, Severity: SeverityWarning, Dimensions: node, Without: perNode, Description: "node memory above 90%"},
		{Name: "node-network-in-high", Kind: KindMetric, Metric: events.MetricNodeNetworkIn, Statistic: StatRate, Compare: GreaterThan,
			Threshold: 100e6, Periods: 3, Severity: SeverityWarning, Dimensions: node, Without: perNode, Description: "inbound bandwidth above 100 MB/s"},
		{Name: "node-network-out-high", Kind: KindMetric, Metric: events.MetricNodeNetworkOut, Statistic: StatRate, Compare: GreaterThan,
			Threshold: 100e6, Periods: 3, Severity: SeverityWarning, Dimensions: node, Without: perNode, Description: "outbound bandwidth above 100 MB/s"},
		{Name: "node-connections-high", Kind: KindMetric, Metric: events.MetricActiveConnectionCount, Compare: GreaterThan, Threshold: 50000,
			Periods: 3, Severity: SeverityWarning, Dimensions: node, Without: perNode, Description: "active connections on a node above 50000"},
		{Name: "node-tcp-close-wait-high", Kind: KindMetric, Metric: events.MetricNodeTCPCloseWait, Compare: GreaterThan, Threshold: 1000,
			Periods: 3, Severity: SeverityWarning, Dimensions: node, Without: perNode, Description: "unusual TCP state: CLOSE_WAIT above 1000"},
		{Name: "node-tcp-fin-wait2-high", Kind: KindMetric, Metric: events.MetricNodeTCPFinWait2, Compare: GreaterThan, Threshold: 1000,
			Periods: 3, Severity: SeverityWarning, Dimensions: node, Without: perNode, Description: "unusual TCP state: FIN_WAIT2 above 1000"},
		{Name: "node-tcp-syn-recv-high", Kind: KindMetric, Metric: events.MetricNodeTCPSynRecv, Compare: GreaterThan, Threshold: 1000,
			Periods: 3, Severity: SeverityMajor, Dimensions: node, Without: perNode, Description: "unusual TCP state: SYN_RECV above 1000 (SYN flood?)"},
		{Name: "elb-no-healthy-host", Kind: KindMetric, Metric: events.MetricHealthyHostCount, Statistic: StatMaximum, Compare: LessThan, Threshold: 1,
			Periods: 3, Severity: SeverityCritical, Dimensions: map[string]string{events.DimLoadBalancer: "*", events.DimListener: "*"},
			Description: "ELB unhealthy: no healthy real server behind a listener for three periods"},
		{Name: RuleRealServerUnhealthy, Kind: KindRealServer, Compare: GreaterThan, Threshold: 0, Periods: 1, Severity: SeverityMajor,
			Description: "a real server failed its health checks"},
		{Name: RuleAgentAlive, Kind: KindAgentAlive, Compare: GreaterThan, Threshold: DefaultAgentTimeout, Periods: 1, Severity: SeverityCritical,
			Description: "no heartbeat from an agent for the timeout (seconds)"},
	}
}
