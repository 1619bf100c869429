package auth_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/elbcloud/elb/services/apigw/auth"
)

func TestTokensComeFromFileEnvironmentAndBootstrapAdmin(t *testing.T) {
	dir := t.TempDir()
	yml := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(yml, []byte("tokens:\n  - token: yaml-token-1\n    project: p1\n    role: member\n    user: ann\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{AdminToken: "bootstrap-admin", TokensFile: yml, TokensEnv: "env-token-1:p2:reader env-token-2:p3:admin:ops"})
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]auth.Principal{
		"bootstrap-admin": {User: "admin", Project: "admin", Role: auth.RoleAdmin},
		"yaml-token-1":    {User: "ann", Project: "p1", Role: auth.RoleMember},
		"env-token-1":     {User: "p2-reader", Project: "p2", Role: auth.RoleReader},
		"env-token-2":     {User: "ops", Project: "p3", Role: auth.RoleAdmin},
	} {
		got, err := a.Authenticate(context.Background(), tok)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v, want %+v", tok, got, err, want)
		}
	}
	for _, bad := range []string{"", "nope-nope-nope", string(make([]byte, 9000))} {
		if _, err := a.Authenticate(context.Background(), bad); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	js := filepath.Join(dir, "tokens.json")
	_ = os.WriteFile(js, []byte(`{"tokens":[{"token":"json-token-1","project":"p9","role":"reader"}]}`), 0o600)
	if _, err := auth.New(auth.Config{TokensFile: js}); err != nil {
		t.Fatalf("json token file: %v", err)
	}
	asMap := filepath.Join(dir, "map.json")
	_ = os.WriteFile(asMap, []byte(`{"map-token-123": {"project": "p7", "role": "member"}}`), 0o600)
	m, err := auth.New(auth.Config{TokensFile: asMap})
	if err != nil {
		t.Fatalf("map token file: %v", err)
	}
	if p, err := m.Authenticate(context.Background(), "map-token-123"); err != nil || p.Project != "p7" || p.Role != auth.RoleMember {
		t.Fatalf("map token: %+v %v", p, err)
	}
}

func TestBadTokenConfigurationIsRejected(t *testing.T) {
	dir := t.TempDir()
	for name, cfg := range map[string]auth.Config{
		"short token":    {TokensEnv: "short:p:member"},
		"unknown role":   {TokensEnv: "long-enough-token:p:owner"},
		"bad project":    {TokensEnv: "long-enough-token:p.x:member"},
		"bad env format": {TokensEnv: "long-enough-token:p"},
		"missing file":   {TokensFile: filepath.Join(dir, "none.yaml")},
	} {
		if _, err := auth.New(cfg); !errors.Is(err, auth.ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	f := filepath.Join(dir, "typo.yaml")
	_ = os.WriteFile(f, []byte("tokens:\n  - token: long-enough-token\n    projekt: p\n    role: member\n"), 0o600)
	if _, err := auth.New(auth.Config{TokensFile: f}); !errors.Is(err, auth.ErrConfig) {
		t.Errorf("unknown key in token file: %v", err)
	}
}
