package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
)

// ErrInvalidConfig is wrapped by ParseConfig for a rule file that cannot be used.
var ErrInvalidConfig = errors.New("invalid alarm config")

// Config is the rule file (JSON):
//
//	{
//	  "replace_defaults": false,
//	  "rules": [{"name": "node-cpu-high", "kind": "metric", "metric": "NodeCPUUtilization",
//	             "comparison": ">", "threshold": 80, "periods": 3, "severity": "warning",
//	             "dimensions": {"Node": "*"}, "without": ["LoadBalancer"]}],
//	  "silences": [{"rule": "node-cpu-high", "resource": "Node=n1", "until": "2026-12-02T00:00:00Z"}],
//	  "webhooks": [{"url": "https://ops.example/hook", "headers": {"Authorization": "Bearer …"}}],
//	  "smtp": {"addr": "mail.example:25", "from": "elb@example", "to": ["ops@example"]}
//	}
//
// Rules replace the built-in rule of the same name and add the others,
// unless replace_defaults drops the built-in set.
type Config struct {
	ReplaceDefaults bool      `json:"replace_defaults,omitempty"`
	Rules           []Rule    `json:"rules,omitempty"`
	Silences        []Silence `json:"silences,omitempty"`
	Webhooks        []Webhook `json:"webhooks,omitempty"`
	SMTP            *SMTP     `json:"smtp,omitempty"`
}

// Webhook is an HTTP endpoint that receives every raise and resolve as a
// JSON POST.
type Webhook struct {
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
}

// SMTP is a mail relay that receives every raise and resolve as a mail.
type SMTP struct {
	Addr     string   `json:"addr"` // host:port
	From     string   `json:"from"`
	To       []string `json:"to"`
	Username string   `json:"username,omitempty"`
	Password string   `json:"password,omitempty"`
}

// Validate checks a webhook.
func (w Webhook) Validate() error {
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: webhook url %q must be an absolute http(s) URL", ErrInvalidConfig, w.URL)
	}
	return nil
}

// Validate checks an SMTP relay.
func (s SMTP) Validate() error {
	if _, _, err := net.SplitHostPort(s.Addr); err != nil {
		return fmt.Errorf("%w: smtp addr %q: %v", ErrInvalidConfig, s.Addr, err)
	}
	if _, err := mail.ParseAddress(s.From); err != nil {
		return fmt.Errorf("%w: smtp from %q: %v", ErrInvalidConfig, s.From, err)
	}
	if len(s.To) == 0 {
		return fmt.Errorf("%w: smtp needs at least one recipient", ErrInvalidConfig)
	}
	for _, to := range s.To {
		if _, err := mail.ParseAddress(to); err != nil {
			return fmt.Errorf("%w: smtp to %q: %v", ErrInvalidConfig, to, err)
		}
	}
	return nil
}

// ParseConfig strictly decodes and validates a rule file.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if dec.More() {
		return Config{}, fmt.Errorf("%w: trailing data", ErrInvalidConfig)
	}
	seen := map[string]bool{}
	for _, r := range c.Rules {
		if err := r.Validate(); err != nil {
			return Config{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		if seen[r.Name] {
			return Config{}, fmt.Errorf("%w: rule %q defined twice", ErrInvalidConfig, r.Name)
		}
		seen[r.Name] = true
	}
	for _, s := range c.Silences {
		if s.Until.IsZero() {
			return Config{}, fmt.Errorf("%w: silence of rule %q resource %q has no until", ErrInvalidConfig, s.Rule, s.Resource)
		}
	}
	for _, w := range c.Webhooks {
		if err := w.Validate(); err != nil {
			return Config{}, err
		}
	}
	if c.SMTP != nil {
		if err := c.SMTP.Validate(); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

// MergeRules returns the rules in force: the built-in rules with same-named
// ones replaced by the file's, then the file's new rules; or only the file's
// rules when it replaces the defaults. Every rule is normalized.
func MergeRules(defaults []Rule, c Config) []Rule {
	var out []Rule
	own := map[string]Rule{}
	for _, r := range c.Rules {
		own[r.Name] = r
	}
	if !c.ReplaceDefaults {
		for _, r := range defaults {
			if o, ok := own[r.Name]; ok {
				r = o
				delete(own, r.Name)
			}
			out = append(out, r.Normalized())
		}
	}
	for _, r := range c.Rules {
		if _, ok := own[r.Name]; ok {
			out = append(out, r.Normalized())
		}
	}
	return out
}
