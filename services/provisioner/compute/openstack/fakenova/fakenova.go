// Package fakenova is a fake Keystone v3 + Nova v2.1 HTTP server that speaks
// the real API's JSON shapes, so that gophercloud itself runs in tests. It
// can be told to fail the Nth create or to never bring servers to ACTIVE.
package fakenova

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Token is the only token the fake accepts.
const Token = "fake-token-0123456789"

// Server is a running fake.
type Server struct {
	*httptest.Server
	// NetworkName is the network addresses are reported on.
	NetworkName string

	mu          sync.Mutex
	servers     map[string]*server
	creates     int
	failCreate  map[int]bool
	neverActive bool
	bootPolls   int
	deletePolls int
	nextIP      int
	auths       int
}

type server struct {
	ID, Name, Status, Flavor, Image, AZ, UserData, Network string
	Metadata                                               map[string]string
	Address                                                string
	Polls                                                  int
	Deleted                                                bool
	DeletePolls                                            int
	Fault                                                  string
}

// New starts a fake. bootPolls is how many GETs a server stays in BUILD.
func New() *Server {
	s := &Server{NetworkName: "elb-net", servers: map[string]*server{}, failCreate: map[int]bool{}, bootPolls: 2, deletePolls: 1, nextIP: 10}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v3/auth/tokens", s.auth)
	mux.HandleFunc("POST /v2.1/servers", s.withToken(s.create))
	mux.HandleFunc("GET /v2.1/servers/detail", s.withToken(s.list))
	mux.HandleFunc("GET /v2.1/servers/{id}", s.withToken(s.get))
	mux.HandleFunc("DELETE /v2.1/servers/{id}", s.withToken(s.delete))
	s.Server = httptest.NewServer(mux)
	return s
}

// IdentityEndpoint is the Keystone URL to authenticate against.
func (s *Server) IdentityEndpoint() string { return s.URL + "/v3/" }

// FailCreate makes the nth server create (1-based, counting from now on)
// go to ERROR with a fault.
func (s *Server) FailCreate(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCreate[s.creates+n] = true
}

// NeverActive keeps every new server in BUILD.
func (s *Server) NeverActive(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.neverActive = v
}

// Boot lets every server still in BUILD become ACTIVE on its next poll
// (after NeverActive(false)).
func (s *Server) Boot() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sv := range s.servers {
		if sv.Status == "BUILD" {
			sv.Polls = s.bootPolls
		}
	}
}

// Creates counts server creates.
func (s *Server) Creates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creates
}

// Live lists the names of servers that exist (not deleted).
func (s *Server) Live() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, sv := range s.servers {
		if !sv.Deleted {
			out = append(out, sv.Name)
		}
	}
	return out
}

// UserData returns the decoded user-data of the live server named name.
func (s *Server) UserData(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sv := range s.servers {
		if sv.Name == name && !sv.Deleted {
			return sv.UserData, true
		}
	}
	return "", false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func fault(w http.ResponseWriter, code int, kind, msg string) {
	writeJSON(w, code, map[string]any{kind: map[string]any{"code": code, "message": msg}})
}

func (s *Server) withToken(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Auth-Token") != Token {
			fault(w, http.StatusUnauthorized, "error", "The request you have made requires authentication.")
			return
		}
		h(w, r)
	}
}

func (s *Server) auth(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Auth struct {
			Identity struct {
				Methods  []string `json:"methods"`
				Password struct {
					User struct {
						Name     string `json:"name"`
						Password string `json:"password"`
					} `json:"user"`
				} `json:"password"`
			} `json:"identity"`
		} `json:"auth"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Auth.Identity.Password.User.Password != "secret" {
		fault(w, http.StatusUnauthorized, "error", "The request you have made requires authentication.")
		return
	}
	s.mu.Lock()
	s.auths++
	s.mu.Unlock()
	now := time.Now().UTC()
	w.Header().Set("X-Subject-Token", Token)
	writeJSON(w, http.StatusCreated, map[string]any{"token": map[string]any{
		"methods":    []string{"password"},
		"expires_at": now.Add(time.Hour).Format("2006-01-02T15:04:05.000000Z"),
		"issued_at":  now.Format("2006-01-02T15:04:05.000000Z"),
		"user":       map[string]any{"id": "u1", "name": body.Auth.Identity.Password.User.Name, "domain": map[string]any{"id": "default", "name": "Default"}},
		"project":    map[string]any{"id": "p1", "name": "elb", "domain": map[string]any{"id": "default", "name": "Default"}},
		"catalog": []any{map[string]any{"type": "compute", "name": "nova", "id": "c1", "endpoints": []any{
			map[string]any{"id": "e1", "interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": s.URL + "/v2.1"},
		}}},
	}})
}

func (s *Server) view(sv *server) map[string]any {
	v := map[string]any{
		"id": sv.ID, "name": sv.Name, "status": sv.Status, "tenant_id": "p1", "user_id": "u1",
		"metadata": sv.Metadata, "flavor": map[string]any{"id": sv.Flavor}, "image": map[string]any{"id": sv.Image},
		"OS-EXT-AZ:availability_zone": sv.AZ, "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z",
		"addresses": map[string]any{},
		"links":     []any{map[string]any{"rel": "self", "href": s.URL + "/v2.1/servers/" + sv.ID}},
	}
	if sv.Address != "" {
		v["addresses"] = map[string]any{sv.Network: []any{map[string]any{"addr": sv.Address, "version": 4, "OS-EXT-IPS:type": "fixed"}}}
	}
	if sv.Fault != "" {
		v["fault"] = map[string]any{"code": 500, "message": sv.Fault, "created": "2026-01-01T00:00:00Z"}
	}
	return v
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Server struct {
			Name      string            `json:"name"`
			ImageRef  string            `json:"imageRef"`
			FlavorRef string            `json:"flavorRef"`
			AZ        string            `json:"availability_zone"`
			UserData  string            `json:"user_data"`
			Metadata  map[string]string `json:"metadata"`
			Networks  []struct {
				UUID string `json:"uuid"`
			} `json:"networks"`
		} `json:"server"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Server.Name == "" || body.Server.FlavorRef == "" || body.Server.ImageRef == "" {
		fault(w, http.StatusBadRequest, "badRequest", "Invalid input for field/attribute server.")
		return
	}
	ud, err := base64.StdEncoding.DecodeString(body.Server.UserData)
	if err != nil {
		fault(w, http.StatusBadRequest, "badRequest", "User data needs to be valid base 64.")
		return
	}
	if len(body.Server.Networks) != 1 || body.Server.Networks[0].UUID == "" {
		fault(w, http.StatusBadRequest, "badRequest", "exactly one network is expected")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creates++
	sv := &server{ID: fmt.Sprintf("srv-%04d", s.creates), Name: body.Server.Name, Status: "BUILD", Flavor: body.Server.FlavorRef,
		Image: body.Server.ImageRef, AZ: body.Server.AZ, UserData: string(ud), Metadata: body.Server.Metadata, Network: s.NetworkName}
	if s.failCreate[s.creates] {
		sv.Status, sv.Fault = "ERROR", "No valid host was found. There are not enough hosts available."
	}
	if s.neverActive {
		sv.Polls = -1 << 30
	}
	s.servers[sv.ID] = sv
	writeJSON(w, http.StatusAccepted, map[string]any{"server": map[string]any{"id": sv.ID, "adminPass": "x", "OS-DCF:diskConfig": "MANUAL",
		"security_groups": []any{map[string]any{"name": "default"}}, "links": []any{map[string]any{"rel": "self", "href": s.URL + "/v2.1/servers/" + sv.ID}}}})
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv, ok := s.servers[r.PathValue("id")]
	if !ok || (sv.Deleted && sv.DeletePolls <= 0) {
		fault(w, http.StatusNotFound, "itemNotFound", "Instance could not be found.")
		return
	}
	if sv.Deleted {
		sv.DeletePolls--
	} else if sv.Status == "BUILD" {
		sv.Polls++
		if sv.Polls >= s.bootPolls {
			sv.Status = "ACTIVE"
			s.nextIP++
			sv.Address = fmt.Sprintf("10.0.%d.%d", s.nextIP/250, s.nextIP%250+2)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"server": s.view(sv)})
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	var re *regexp.Regexp
	if n := r.URL.Query().Get("name"); n != "" {
		var err error
		if re, err = regexp.Compile(n); err != nil {
			fault(w, http.StatusBadRequest, "badRequest", "invalid name filter")
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []any{}
	for _, sv := range s.servers {
		if sv.Deleted || (re != nil && !re.MatchString(sv.Name)) {
			continue
		}
		out = append(out, s.view(sv))
	}
	writeJSON(w, http.StatusOK, map[string]any{"servers": out})
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv, ok := s.servers[r.PathValue("id")]
	if !ok || sv.Deleted {
		fault(w, http.StatusNotFound, "itemNotFound", "Instance could not be found.")
		return
	}
	sv.Deleted, sv.DeletePolls, sv.Status = true, s.deletePolls, "DELETED"
	w.WriteHeader(http.StatusNoContent)
}

// Names matching a prefix, for assertions.
func (s *Server) LiveWithPrefix(prefix string) []string {
	var out []string
	for _, n := range s.Live() {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}
