package events

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestRoundTripOfEveryRegisteredType(t *testing.T) {
	for _, name := range Types() {
		ent := byName[name]
		env, err := New(AggLoadBalancer, "lb-1", ent.factory(), Meta{Actor: "a", ProjectID: "p", CorrelationID: "c"})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := Marshal(env)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ev, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ev.Type != name || ev.SchemaVersion != ent.version || ev.ProjectID != "p" {
			t.Errorf("%s: decoded %+v", name, ev.Envelope)
		}
	}
}

func TestDecodeErrorsAreTyped(t *testing.T) {
	good := MustNew(AggLoadBalancer, "lb", &ELBDeleted{}, Meta{})
	mutate := func(f func(m map[string]any)) []byte {
		b, _ := Marshal(good)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"garbage", []byte("\x00\x01garbage"), ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"array", []byte("[]"), ErrMalformed},
		{"unknown type", mutate(func(m map[string]any) { m["type"] = "Nope" }), ErrUnknownType},
		{"future version", mutate(func(m map[string]any) { m["schema_version"] = 99 }), ErrUnsupportedVersion},
		{"zero version", mutate(func(m map[string]any) { m["schema_version"] = 0 }), ErrUnsupportedVersion},
		{"unknown envelope field", mutate(func(m map[string]any) { m["extra"] = 1 }), ErrMalformed},
		{"unknown payload field", mutate(func(m map[string]any) { m["payload"] = map[string]any{"x": 1} }), ErrMalformed},
		{"payload wrong type", mutate(func(m map[string]any) { m["payload"] = "str" }), ErrMalformed},
		{"missing aggregate", mutate(func(m map[string]any) { delete(m, "aggregate_id") }), ErrMalformed},
		{"trailing data", append(mustMarshal(good), []byte(" {}")...), ErrMalformed},
	}
	for _, c := range cases {
		_, err := Unmarshal(c.data)
		if !errors.Is(err, c.want) || !IsDecodeError(err) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

func mustMarshal(e Envelope) []byte { b, _ := Marshal(e); return b }

func TestOldMemberAddedIsUpcastOnRead(t *testing.T) {
	v1 := `{"id":"e1","type":"MemberAdded","schema_version":1,"aggregate_type":"loadbalancer","aggregate_id":"lb",
	"aggregate_version":3,"occurred_at":"2026-01-01T00:00:00Z",
	"payload":{"member_id":"m1","pool_id":"p1","address":"127.0.0.5","port":8080}}`
	ev, err := Unmarshal([]byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	m := ev.Data.(*MemberAdded)
	if ev.SchemaVersion != 2 || m.MemberID != "m1" || m.Spec.PoolID != "p1" || m.Spec.ProtocolPort != 8080 || m.Spec.Weight != 1 || !m.Spec.AdminStateUp {
		t.Fatalf("upcast = v%d %+v", ev.SchemaVersion, m)
	}
	bad := strings.Replace(v1, `"member_id":"m1",`, "", 1)
	if _, err := Unmarshal([]byte(bad)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("upcast of v1 without member_id: %v", err)
	}
}

func TestCommitRoundTripAndRejects(t *testing.T) {
	a := MustNew(AggLoadBalancer, "lb", &ELBDeleted{}, Meta{})
	b := MustNew(AggLoadBalancer, "lb", &ELBActive{Version: 2}, Meta{})
	data, err := MarshalCommit([]Envelope{a, b})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := UnmarshalCommit(data)
	if err != nil || len(evs) != 2 || evs[1].Data.(*ELBActive).Version != 2 {
		t.Fatalf("commit = %v, %v", evs, err)
	}
	for _, bad := range []string{"", "[]", "{}", "[1]", "nope", "{\"a\":1}\n\n{}"} {
		if _, err := UnmarshalCommit([]byte(bad)); !IsDecodeError(err) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	if _, err := MarshalCommit(nil); err == nil {
		t.Error("empty commit marshalled")
	}
}

func TestNewRejectsUnregisteredPayloads(t *testing.T) {
	if _, err := New(AggLoadBalancer, "lb", struct{}{}, Meta{}); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("err = %v", err)
	}
	if _, err := New("", "lb", &ELBDeleted{}, Meta{}); err == nil {
		t.Fatal("missing aggregate type accepted")
	}
}

func TestSubjectsAndTokens(t *testing.T) {
	typ, id, err := ParseEventSubject(EventSubject(AggLoadBalancer, "abc"))
	if err != nil || typ != AggLoadBalancer || id != "abc" {
		t.Fatalf("parse = %q %q %v", typ, id, err)
	}
	for _, s := range []string{"x", "elb.evt.", "elb.evt.lb", "other.evt.lb.x"} {
		if _, _, err := ParseEventSubject(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
	for tok, want := range map[string]bool{"abc-1": true, "": false, "a.b": false, "a*": false, "a>": false, "a b": false, strings.Repeat("x", 129): false} {
		if ValidToken(tok) != want {
			t.Errorf("ValidToken(%q) != %v", tok, want)
		}
	}
}

func TestNodeConfigValidation(t *testing.T) {
	good := NodeConfig{NodeID: "n1", Role: RoleTengine, Version: 1, Address: "127.101.0.2", LoadBalancers: []LBConfig{{
		ID: "lb", VIP: "127.100.0.2", Listeners: []ListenerConfig{{ID: "l", Protocol: "HTTP", Port: 80,
			Pool: &PoolConfig{ID: "p", Members: []MemberConfig{{ID: "m", Address: "127.0.0.1", Port: 8080, Weight: 1}}}}},
	}}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(c *NodeConfig){
		func(c *NodeConfig) { c.NodeID = "a.b" },
		func(c *NodeConfig) { c.Role = "x" },
		func(c *NodeConfig) { c.Address = "nope" },
		func(c *NodeConfig) { c.LoadBalancers[0].VIP = "300.1.1.1" },
		func(c *NodeConfig) { c.LoadBalancers[0].Listeners[0].Port = 0 },
		func(c *NodeConfig) { c.LoadBalancers[0].Listeners[0].Protocol = "SCTP" },
		func(c *NodeConfig) { c.LoadBalancers[0].Listeners[0].Pool.Members[0].Weight = 300 },
		func(c *NodeConfig) { c.LoadBalancers[0].Listeners[0].AllowedCIDRs = []string{"10.0.0.0/33"} },
		func(c *NodeConfig) {
			c.LoadBalancers[0].Listeners[0].Pool.HealthMonitor = &HealthCheckConfig{Type: "TCP"}
		},
	}
	for i, f := range bad {
		c := good
		c.LoadBalancers = []LBConfig{good.LoadBalancers[0]}
		l := good.LoadBalancers[0].Listeners[0]
		p := *l.Pool
		p.Members = append([]MemberConfig(nil), p.Members...)
		l.Pool = &p
		c.LoadBalancers[0].Listeners = []ListenerConfig{l}
		f(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
}

func FuzzUnmarshalNeverPanics(f *testing.F) {
	f.Add(mustMarshal(MustNew(AggLoadBalancer, "lb", &ELBDeleted{}, Meta{})))
	f.Add([]byte(`[{"type":"MemberAdded","schema_version":1}]`))
	f.Add([]byte(`{"type":"MemberAdded","schema_version":1,"id":"x","aggregate_type":"a","aggregate_id":"b","payload":{"member_id":"m"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := Unmarshal(data); err != nil && !IsDecodeError(err) {
			t.Fatalf("untyped error %v", err)
		}
		if _, err := UnmarshalCommit(data); err != nil && !IsDecodeError(err) {
			t.Fatalf("untyped commit error %v", err)
		}
	})
}
