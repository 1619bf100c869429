package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/elbcloud/elb/services/apigw/domain"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
)

// ErrIdentityUnavailable is returned when Keystone cannot be asked.
var ErrIdentityUnavailable = errors.New("identity service unavailable")

// Keystone validates tokens against Keystone v3 (GET /v3/auth/tokens with
// the token as both X-Auth-Token and X-Subject-Token: a token may validate
// itself). Keystone role names map to ELB roles: admin → admin; member,
// _member_, load-balancer_member → member; reader, load-balancer_observer →
// reader.
type Keystone struct {
	endpoint string
	http     *http.Client
}

// NewKeystone returns a validator for the Keystone at url (with or without
// the /v3 suffix).
func NewKeystone(url string, client *http.Client) *Keystone {
	u := strings.TrimRight(url, "/")
	if !strings.HasSuffix(u, "/v3") {
		u += "/v3"
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Keystone{endpoint: u + "/", http: client}
}

// Validate implements Validator.
func (k *Keystone) Validate(ctx context.Context, token string) (Principal, time.Time, error) {
	pc := &gophercloud.ProviderClient{HTTPClient: *k.http, IdentityBase: k.endpoint, IdentityEndpoint: k.endpoint}
	pc.SetToken(token)
	sc := &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: k.endpoint}
	res := tokens.Get(ctx, sc, token)
	if res.Err != nil {
		if gophercloud.ResponseCodeIs(res.Err, http.StatusNotFound) || gophercloud.ResponseCodeIs(res.Err, http.StatusUnauthorized) {
			return Principal{}, time.Time{}, ErrUnauthenticated
		}
		return Principal{}, time.Time{}, fmt.Errorf("%w: %v", ErrIdentityUnavailable, res.Err)
	}
	tok, err := res.ExtractToken()
	if err != nil {
		return Principal{}, time.Time{}, fmt.Errorf("%w: %v", ErrIdentityUnavailable, err)
	}
	proj, err := res.ExtractProject()
	if err != nil || proj == nil || !domain.ValidID(proj.ID) {
		return Principal{}, time.Time{}, fmt.Errorf("%w: token is not scoped to a project", ErrUnauthenticated)
	}
	roles, err := res.ExtractRoles()
	if err != nil {
		return Principal{}, time.Time{}, fmt.Errorf("%w: %v", ErrIdentityUnavailable, err)
	}
	user, _ := res.ExtractUser()
	p := Principal{Project: proj.ID}
	if user != nil {
		p.User = user.Name
		if p.User == "" {
			p.User = user.ID
		}
	}
	rank := 0
	for _, r := range roles {
		switch strings.ToLower(r.Name) {
		case "admin":
			rank = max(rank, 3)
		case "member", "_member_", "load-balancer_member":
			rank = max(rank, 2)
		case "reader", "load-balancer_observer", "load-balancer_global_observer":
			rank = max(rank, 1)
		}
	}
	switch rank {
	case 3:
		p.Role = RoleAdmin
	case 2:
		p.Role = RoleMember
	case 1:
		p.Role = RoleReader
	default:
		return Principal{}, time.Time{}, fmt.Errorf("token has no load-balancer role: %w", ErrForbidden)
	}
	if !tok.ExpiresAt.IsZero() && time.Now().After(tok.ExpiresAt) {
		return Principal{}, time.Time{}, ErrUnauthenticated
	}
	return p, tok.ExpiresAt, nil
}
