package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// AgentUser is the NATS user name of a node's agent.
func AgentUser(nodeID string) string { return "agent-" + nodeID }

// AgentPassword derives a node agent's NATS password from the cluster's agent
// secret, so the server can check any agent without a credential database and
// a leaked password opens exactly one node's subjects (decision 0005).
func AgentPassword(secret, nodeID string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(nodeID))
	return hex.EncodeToString(m.Sum(nil))
}
