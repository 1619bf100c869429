package events

// Metric names (AWS Classic ELB names from seed 001, plus node metrics).
const (
	MetricRequestCount            = "RequestCount"
	MetricLatency                 = "Latency" // seconds
	MetricHealthyHostCount        = "HealthyHostCount"
	MetricUnHealthyHostCount      = "UnHealthyHostCount"
	MetricHTTPCodeELB4XX          = "HTTPCode_ELB_4XX"
	MetricHTTPCodeELB5XX          = "HTTPCode_ELB_5XX"
	MetricHTTPCodeBackend2XX      = "HTTPCode_Backend_2XX"
	MetricHTTPCodeBackend3XX      = "HTTPCode_Backend_3XX"
	MetricHTTPCodeBackend4XX      = "HTTPCode_Backend_4XX"
	MetricHTTPCodeBackend5XX      = "HTTPCode_Backend_5XX"
	MetricBackendConnectionErrors = "BackendConnectionErrors"
	MetricSurgeQueueLength        = "SurgeQueueLength"
	MetricSpilloverCount          = "SpilloverCount"
	MetricActiveConnectionCount   = "ActiveConnectionCount"
	MetricNewConnectionCount      = "NewConnectionCount"
	MetricProcessedBytesIn        = "ProcessedBytesIn"
	MetricProcessedBytesOut       = "ProcessedBytesOut"
	MetricNodeCPUUtilization      = "NodeCPUUtilization"    // percent
	MetricNodeMemoryUtilization   = "NodeMemoryUtilization" // percent
	MetricNodeNetworkIn           = "NodeNetworkIn"         // bytes
	MetricNodeNetworkOut          = "NodeNetworkOut"        // bytes
	MetricNodeTCPEstablished      = "NodeTCPEstablished"
	MetricNodeTCPCloseWait        = "NodeTCPCloseWait"
	MetricNodeTCPFinWait2         = "NodeTCPFinWait2"
	MetricNodeTCPTimeWait         = "NodeTCPTimeWait"
	MetricNodeTCPSynRecv          = "NodeTCPSynRecv"
	// MetricClientIPRequestCount and MetricURLRequestCount carry the top
	// client IPs and URLs of an interval (dimension ClientIP or URL, Sum =
	// requests); agents send at most TopK of each per interval.
	MetricClientIPRequestCount = "ClientIPRequestCount"
	MetricURLRequestCount      = "URLRequestCount"
)

// Dimensions of the top-N metrics.
const (
	DimClientIP = "ClientIP"
	DimURL      = "URL"
)

// TopK bounds how many client IPs and URLs an agent reports per interval.
const TopK = 20

// Metrics lists every metric name the stats service accepts.
var Metrics = []string{
	MetricRequestCount, MetricLatency, MetricHealthyHostCount, MetricUnHealthyHostCount,
	MetricHTTPCodeELB4XX, MetricHTTPCodeELB5XX, MetricHTTPCodeBackend2XX, MetricHTTPCodeBackend3XX,
	MetricHTTPCodeBackend4XX, MetricHTTPCodeBackend5XX, MetricBackendConnectionErrors,
	MetricSurgeQueueLength, MetricSpilloverCount, MetricActiveConnectionCount, MetricNewConnectionCount,
	MetricProcessedBytesIn, MetricProcessedBytesOut, MetricNodeCPUUtilization, MetricNodeMemoryUtilization,
	MetricNodeNetworkIn, MetricNodeNetworkOut, MetricNodeTCPEstablished, MetricNodeTCPCloseWait,
	MetricNodeTCPFinWait2, MetricNodeTCPTimeWait, MetricNodeTCPSynRecv,
	MetricClientIPRequestCount, MetricURLRequestCount,
}

// KnownMetric reports whether name is in Metrics.
func KnownMetric(name string) bool {
	for _, m := range Metrics {
		if m == name {
			return true
		}
	}
	return false
}
