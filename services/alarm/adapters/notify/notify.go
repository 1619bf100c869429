// Package notify delivers alarm notifications: a JSON POST to webhooks and
// a mail through an SMTP relay. Each channel is one small type behind the
// Notifier interface the app declares.
package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"sort"
	"strings"
	"time"

	"github.com/elbcloud/elb/services/alarm/domain"
)

// ErrDelivery is wrapped by every failed delivery.
var ErrDelivery = errors.New("notification not delivered")

// Notification is what every channel delivers (see domain.Notification).
type Notification = domain.Notification

// Status values of a notification.
const (
	StatusFiring   = domain.StatusFiring
	StatusResolved = domain.StatusResolved
)

// Webhook posts notifications as JSON, retrying transient failures.
type Webhook struct {
	url      string
	headers  map[string]string
	client   *http.Client
	attempts int
	backoff  time.Duration
}

// NewWebhook returns a webhook channel; client nil means a client with a
// 5 s timeout per request.
func NewWebhook(cfg domain.Webhook, client *http.Client) (*Webhook, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &Webhook{url: cfg.URL, headers: cfg.Headers, client: client, attempts: 3, backoff: 200 * time.Millisecond}, nil
}

// Name is the channel name used in metrics.
func (w *Webhook) Name() string { return "webhook" }

// Notify POSTs n. 2xx is success; 4xx other than 408 and 429 is not retried;
// other failures are retried with doubling backoff.
func (w *Webhook) Notify(ctx context.Context, n Notification) error {
	body, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("%w: webhook: %v", ErrDelivery, err)
	}
	backoff := w.backoff
	var last error
	for attempt := 1; attempt <= w.attempts; attempt++ {
		retry, err := w.post(ctx, body)
		if err == nil {
			return nil
		}
		last = err
		if !retry || attempt == w.attempts {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: webhook %s: %w", ErrDelivery, w.url, ctx.Err())
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	return fmt.Errorf("%w: webhook %s: %w", ErrDelivery, w.url, last)
}

func (w *Webhook) post(ctx context.Context, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "elb-alarm")
	for k, v := range w.headers {
		req.Header.Set(k, v)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("status %d", resp.StatusCode)
	}
	return false, fmt.Errorf("status %d", resp.StatusCode)
}

// Mail sends notifications through an SMTP relay (STARTTLS when offered,
// PLAIN auth when a user is configured).
type Mail struct {
	cfg     domain.SMTP
	timeout time.Duration
}

// NewMail returns a mail channel.
func NewMail(cfg domain.SMTP) (*Mail, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Mail{cfg: cfg, timeout: 15 * time.Second}, nil
}

// Name is the channel name used in metrics.
func (m *Mail) Name() string { return "smtp" }

// Notify sends one mail to every recipient.
func (m *Mail) Notify(ctx context.Context, n Notification) error {
	if err := m.send(ctx, n); err != nil {
		return fmt.Errorf("%w: smtp %s: %w", ErrDelivery, m.cfg.Addr, err)
	}
	return nil
}

func (m *Mail) send(ctx context.Context, n Notification) error {
	host, _, err := net.SplitHostPort(m.cfg.Addr)
	if err != nil {
		return err
	}
	d := net.Dialer{Timeout: m.timeout}
	conn, err := d.DialContext(ctx, "tcp", m.cfg.Addr)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(m.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello("elb-alarm"); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}); err != nil {
			return err
		}
	}
	if m.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", m.cfg.Username, m.cfg.Password, host)); err != nil {
			return err
		}
	}
	if err := c.Mail(m.cfg.From); err != nil {
		return err
	}
	for _, to := range m.cfg.To {
		if err := c.Rcpt(to); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(mailMessage(m.cfg.From, m.cfg.To, n)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// headerSafe keeps a value on one header line.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

func mailMessage(from string, to []string, n Notification) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", headerSafe(from))
	fmt.Fprintf(&b, "To: %s\r\n", headerSafe(strings.Join(to, ", ")))
	fmt.Fprintf(&b, "Subject: %s\r\n", headerSafe(n.Subject()))
	fmt.Fprintf(&b, "Date: %s\r\n", n.Time.UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@elb-alarm>\r\n", headerSafe(n.EventID))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	fmt.Fprintf(&b, "Status:    %s\r\nRule:      %s\r\nSeverity:  %s\r\nResource:  %s\r\nValue:     %g\r\n",
		n.Status, n.Rule, n.Severity, n.Resource, n.Value)
	if n.Status == StatusFiring {
		fmt.Fprintf(&b, "Threshold: %g\r\n", n.Threshold)
	}
	keys := make([]string, 0, len(n.Dimensions))
	for k := range n.Dimensions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\r\n", k, n.Dimensions[k])
	}
	fmt.Fprintf(&b, "Time:      %s\r\nAlarm:     %s\r\n\r\n", n.Time.UTC().Format(time.RFC3339), n.AlarmID)
	// A line with a single dot would end the DATA section early; the
	// textproto dot-writer escapes it, CR/LF in the message are normalised.
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(n.Message, "\r", ""), "\n", "\r\n"))
	b.WriteString("\r\n")
	return b.Bytes()
}
