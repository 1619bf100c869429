// Package auth turns API tokens into principals: a project and a role. Tokens
// come from a token file (YAML or JSON), the ELB_TOKENS environment variable,
// the bootstrap admin token, and optionally Keystone v3 token validation.
package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/elbcloud/elb/services/apigw/domain"
	"gopkg.in/yaml.v3"
)

// Roles, from the most to the least privileged.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
	RoleReader = "reader"
)

// ErrUnauthenticated is returned for a missing, unknown or expired token.
var ErrUnauthenticated = errors.New("authentication required")

// ErrForbidden is returned for an authenticated caller that may not do what
// it asked (a reader writing, a non-admin on an admin endpoint).
var ErrForbidden = errors.New("forbidden")

// ErrConfig is wrapped by errors in the token configuration.
var ErrConfig = errors.New("invalid token configuration")

// Principal is who a request acts as.
type Principal struct {
	User    string
	Project string
	Role    string
}

// IsAdmin reports the admin role.
func (p Principal) IsAdmin() bool { return p.Role == RoleAdmin }

// CanWrite reports whether the principal may change resources.
func (p Principal) CanWrite() bool { return p.Role == RoleAdmin || p.Role == RoleMember }

// TokenEntry is one static token of the token file.
type TokenEntry struct {
	Token   string `yaml:"token" json:"token"`
	Project string `yaml:"project" json:"project"`
	Role    string `yaml:"role" json:"role"`
	User    string `yaml:"user" json:"user"`
}

type tokenFile struct {
	Tokens []TokenEntry `yaml:"tokens"`
}

// Validator checks a token with an outside identity service (Keystone).
type Validator interface {
	Validate(ctx context.Context, token string) (Principal, time.Time, error)
}

// Authenticator resolves tokens. It is safe for concurrent use.
type Authenticator struct {
	static    map[[32]byte]Principal
	validator Validator

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	p       Principal
	expires time.Time
}

// Config is where tokens come from.
type Config struct {
	// AdminToken is the bootstrap admin token (project AdminProject).
	AdminToken   string
	AdminProject string
	// TokensFile is a YAML or JSON file: {"tokens": [{token, project, role, user}]}.
	TokensFile string
	// TokensEnv is the value of ELB_TOKENS: "token:project:role[:user]" entries
	// separated by commas or whitespace.
	TokensEnv string
	// Validator, when set, validates tokens that are not static (Keystone).
	Validator Validator
}

// New builds an Authenticator.
func New(cfg Config) (*Authenticator, error) {
	a := &Authenticator{static: map[[32]byte]Principal{}, validator: cfg.Validator, cache: map[[32]byte]cached{}}
	if cfg.AdminToken != "" {
		proj := cfg.AdminProject
		if proj == "" {
			proj = "admin"
		}
		if err := a.add(TokenEntry{Token: cfg.AdminToken, Project: proj, Role: RoleAdmin, User: "admin"}); err != nil {
			return nil, err
		}
	}
	if cfg.TokensFile != "" {
		b, err := os.ReadFile(cfg.TokensFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		entries, err := ParseTokens(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.TokensFile, err)
		}
		for _, e := range entries {
			if err := a.add(e); err != nil {
				return nil, fmt.Errorf("%s: %w", cfg.TokensFile, err)
			}
		}
	}
	if cfg.TokensEnv != "" {
		entries, err := ParseTokensEnv(cfg.TokensEnv)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if err := a.add(e); err != nil {
				return nil, err
			}
		}
	}
	return a, nil
}

// ParseTokens parses a token file (YAML, or JSON which is YAML too) in one
// of two shapes: {"tokens": [{"token", "project", "role", "user"}]} or a map
// {"<token>": {"project", "role", "user"}}.
func ParseTokens(b []byte) ([]TokenEntry, error) {
	var f tokenFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err := dec.Decode(&f)
	if err == nil {
		return f.Tokens, nil
	}
	var m map[string]struct {
		Project string `yaml:"project"`
		Role    string `yaml:"role"`
		User    string `yaml:"user"`
	}
	dec = yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if merr := dec.Decode(&m); merr != nil || m == nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	out := make([]TokenEntry, 0, len(m))
	for tok, e := range m {
		out = append(out, TokenEntry{Token: tok, Project: e.Project, Role: e.Role, User: e.User})
	}
	return out, nil
}

// ParseTokensEnv parses the ELB_TOKENS format.
func ParseTokensEnv(s string) ([]TokenEntry, error) {
	var out []TokenEntry
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		parts := strings.Split(f, ":")
		if len(parts) < 3 || len(parts) > 4 {
			return nil, fmt.Errorf("%w: ELB_TOKENS entry must be token:project:role[:user]", ErrConfig)
		}
		e := TokenEntry{Token: parts[0], Project: parts[1], Role: parts[2]}
		if len(parts) == 4 {
			e.User = parts[3]
		}
		out = append(out, e)
	}
	return out, nil
}

func (a *Authenticator) add(e TokenEntry) error {
	if len(e.Token) < 8 {
		return fmt.Errorf("%w: token for project %q is shorter than 8 characters", ErrConfig, e.Project)
	}
	if !domain.ValidID(e.Project) {
		return fmt.Errorf("%w: project %q is not a valid id", ErrConfig, e.Project)
	}
	switch e.Role {
	case RoleAdmin, RoleMember, RoleReader:
	default:
		return fmt.Errorf("%w: role %q (want admin, member or reader)", ErrConfig, e.Role)
	}
	if e.User == "" {
		e.User = e.Project + "-" + e.Role
	}
	a.static[sha256.Sum256([]byte(e.Token))] = Principal{User: e.User, Project: e.Project, Role: e.Role}
	return nil
}

// Authenticate resolves a token.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "" || len(token) > 8192 {
		return Principal{}, ErrUnauthenticated
	}
	h := sha256.Sum256([]byte(token))
	// Map lookup by hash: the hash of a guess reveals nothing about stored
	// tokens, so timing does not leak them.
	if p, ok := a.static[h]; ok {
		return p, nil
	}
	if a.validator == nil {
		return Principal{}, ErrUnauthenticated
	}
	now := time.Now()
	a.mu.Lock()
	if c, ok := a.cache[h]; ok && now.Before(c.expires) {
		a.mu.Unlock()
		return c.p, nil
	}
	a.mu.Unlock()
	p, exp, err := a.validator.Validate(ctx, token)
	if err != nil {
		return Principal{}, err
	}
	if maxExp := now.Add(5 * time.Minute); exp.IsZero() || exp.After(maxExp) {
		exp = maxExp
	}
	a.mu.Lock()
	if len(a.cache) > 10000 {
		clear(a.cache)
	}
	a.cache[h] = cached{p: p, expires: exp}
	a.mu.Unlock()
	return p, nil
}

// Equal compares secrets in constant time.
func Equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
