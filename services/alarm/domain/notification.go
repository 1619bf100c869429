package domain

import (
	"fmt"
	"strings"
	"time"
)

// Status values of a notification.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Notification is what every channel delivers for one AlarmRaised or
// AlarmResolved. EventID lets receivers drop the duplicates an
// at-least-once delivery can cause.
type Notification struct {
	EventID    string            `json:"event_id"`
	Status     string            `json:"status"`
	AlarmID    string            `json:"alarm_id"`
	Rule       string            `json:"rule"`
	Severity   string            `json:"severity,omitempty"`
	Resource   string            `json:"resource"`
	Dimensions map[string]string `json:"dimensions,omitempty"`
	Value      float64           `json:"value"`
	Threshold  float64           `json:"threshold,omitempty"`
	Message    string            `json:"message"`
	Time       time.Time         `json:"time"`
}

// Subject is a one-line summary (mail subject, chat title).
func (n Notification) Subject() string {
	return fmt.Sprintf("[ELB %s] %s %s on %s", strings.ToUpper(n.Status), n.Severity, n.Rule, n.Resource)
}
