package notify

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elbcloud/elb/services/alarm/domain"
	"github.com/elbcloud/elb/services/alarm/internal/smtptest"
)

var sample = Notification{EventID: "ev-1", Status: StatusFiring, AlarmID: "alm-1", Rule: "node-cpu-high", Severity: "warning",
	Resource: "Node=n1", Dimensions: map[string]string{"Node": "n1"}, Value: 97, Threshold: 90,
	Message: "cpu 97 > 90\n.\nsecond line", Time: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}

func TestWebhookPostsJSONAndRetriesServerErrors(t *testing.T) {
	var calls atomic.Int32
	var got Notification
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Token") != "s3cret" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
	}))
	defer srv.Close()
	w, err := NewWebhook(domain.Webhook{URL: srv.URL, Headers: map[string]string{"X-Token": "s3cret"}}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	w.backoff = time.Millisecond
	if err := w.Notify(context.Background(), sample); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 || got.AlarmID != "alm-1" || got.Status != StatusFiring || got.Dimensions["Node"] != "n1" {
		t.Fatalf("calls %d, received %+v", calls.Load(), got)
	}
}

func TestWebhookDoesNotRetryClientErrors(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	w, _ := NewWebhook(domain.Webhook{URL: srv.URL}, srv.Client())
	w.backoff = time.Millisecond
	if err := w.Notify(context.Background(), sample); !errors.Is(err, ErrDelivery) {
		t.Fatalf("err = %v, want ErrDelivery", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("%d calls for a 401, want 1", calls.Load())
	}
}

func TestMailSendsOneMessageToEveryRecipient(t *testing.T) {
	f := smtptest.Start(t)
	m, err := NewMail(domain.SMTP{Addr: f.Addr(), From: "elb@example.org", To: []string{"ops@example.org", "oncall@example.org"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Notify(context.Background(), sample); err != nil {
		t.Fatal(err)
	}
	from, to, data := f.Received()
	if !strings.HasPrefix(from, "<elb@example.org>") || len(to) != 2 {
		t.Fatalf("envelope from %q to %v", from, to)
	}
	for _, want := range []string{"Subject: [ELB FIRING] warning node-cpu-high on Node=n1", "Value:     97", "Threshold: 90", "..\r\nsecond line"} {
		if !strings.Contains(data, want) {
			t.Errorf("mail lacks %q:\n%s", want, data)
		}
	}
}

func TestMailReportsAnUnreachableRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	m, _ := NewMail(domain.SMTP{Addr: addr, From: "elb@example.org", To: []string{"ops@example.org"}})
	if err := m.Notify(context.Background(), sample); !errors.Is(err, ErrDelivery) {
		t.Fatalf("err = %v, want ErrDelivery", err)
	}
}
