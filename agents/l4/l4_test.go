package l4

import (
	"errors"
	"net/netip"
	"testing"
)

func validService() Service {
	return Service{VIP: netip.MustParseAddr("198.18.2.10"), Port: 80, Protocol: TCP, Scheduler: RR, Forward: DR,
		Destinations: []Destination{{Addr: netip.MustParseAddr("198.18.10.2"), Port: 8080, Weight: 1}}}
}

func TestValidateRejectsWhatNoDriverCouldProgram(t *testing.T) {
	for name, mut := range map[string]func(*State){
		"unknown scheduler":    func(s *State) { s.Services[0].Scheduler = "fastest" },
		"unknown protocol":     func(s *State) { s.Services[0].Protocol = "sctp" },
		"unknown forward":      func(s *State) { s.Services[0].Forward = "magic" },
		"port 0":               func(s *State) { s.Services[0].Port = 0 },
		"unspecified vip":      func(s *State) { s.Services[0].VIP = netip.MustParseAddr("0.0.0.0") },
		"negative weight":      func(s *State) { s.Services[0].Destinations[0].Weight = -1 },
		"weight too big":       func(s *State) { s.Services[0].Destinations[0].Weight = MaxWeight + 1 },
		"mixed address family": func(s *State) { s.Services[0].Destinations[0].Addr = netip.MustParseAddr("2001:db8::1") },
		"duplicate service":    func(s *State) { s.Services = append(s.Services, s.Services[0]) },
		"duplicate destination": func(s *State) {
			s.Services[0].Destinations = append(s.Services[0].Destinations, s.Services[0].Destinations[0])
		},
		"persistence too long": func(s *State) { s.Services[0].Persistence = 32 * 24 * 3600 },
	} {
		st := State{Services: []Service{validService()}}
		st.Services[0].Destinations = append([]Destination(nil), st.Services[0].Destinations...)
		mut(&st)
		if err := st.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate() = %v, want ErrInvalid", name, err)
		}
	}
	if err := (State{Services: []Service{validService()}}).Validate(); err != nil {
		t.Fatalf("valid state rejected: %v", err)
	}
}

func TestEqualIgnoresOrder(t *testing.T) {
	a, b := validService(), validService()
	b.Port = 443
	a.Destinations = append(a.Destinations, Destination{Addr: netip.MustParseAddr("198.18.11.2"), Port: 8080, Weight: 0})
	x := State{Services: []Service{a, b}}
	rev := a
	rev.Destinations = []Destination{a.Destinations[1], a.Destinations[0]}
	y := State{Services: []Service{b, rev}}
	if !Equal(x, y) {
		t.Fatal("same services in another order are not Equal")
	}
	y.Services[0].Scheduler = WRR
	if Equal(x, y) {
		t.Fatal("different schedulers are Equal")
	}
	if got := x.VIPs(); len(got) != 1 || got[0] != a.VIP {
		t.Fatalf("VIPs() = %v", got)
	}
}
