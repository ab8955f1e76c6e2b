package identity

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authgate/pdp/pdp"
	"github.com/authgate/pdp/test/redisproc"
)

func TestRevocationMemory(t *testing.T) {
	k := testSigningKeys(t)
	var now atomic.Int64
	now.Store(testNow.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	a := newTestAuthenticator(t, Config{Issuers: []IssuerConfig{staticIssuer(t)}}, Options{Now: clock})
	ctx := context.Background()

	claims := validClaims(testNow)
	claims["exp"] = testNow.Add(2 * time.Hour).Unix()
	token := signClaims(t, "RS256", "rsa1", k.rsa, claims)
	other := validClaims(testNow)
	other["jti"], other["sub"] = "token-2", "user-2"
	otherToken := signClaims(t, "ES256", "ec1", k.ec, other)

	// Verify once so that the revocation must also apply to a cached token.
	if _, err := a.VerifyToken(ctx, token, nil); err != nil {
		t.Fatalf("before revocation: %v", err)
	}

	tests := []struct {
		name string
		rev  Revocation
	}{
		{"by jti", Revocation{Kind: RevokeTokenID, Value: "token-1"}},
		{"by subject", Revocation{Kind: RevokeSubject, Value: "user-1", Issuer: "test"}},
		{"by key id", Revocation{Kind: RevokeKeyID, Value: "rsa1"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each revocation lasts 10 minutes and starts after the previous
			// one has expired.
			now.Store(testNow.Add(time.Duration(i) * 11 * time.Minute).UnixNano())
			tt.rev.ExpiresAt = clock().Add(10 * time.Minute)
			if err := a.Revoke(ctx, tt.rev); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if _, err := a.VerifyToken(ctx, token, nil); reasonOf(err) != pdp.ReasonTokenRevoked {
				t.Fatalf("revoked token: reason = %q, want token.revoked", reasonOf(err))
			}
			if _, err := a.VerifyToken(ctx, otherToken, nil); err != nil {
				t.Errorf("unrelated token: %v", err)
			}
			list, err := a.Revocations(ctx)
			if err != nil {
				t.Fatalf("Revocations: %v", err)
			}
			if len(list) != 1 || list[0].Value != tt.rev.Value {
				t.Errorf("Revocations = %+v, want only %q", list, tt.rev.Value)
			}

			now.Store(tt.rev.ExpiresAt.UnixNano())
			if _, err := a.VerifyToken(ctx, token, nil); err != nil {
				t.Errorf("after the revocation expired: %v", err)
			}
		})
	}
}

func TestRevokeRejectsInvalid(t *testing.T) {
	a := newTestAuthenticator(t, Config{Issuers: []IssuerConfig{staticIssuer(t)}}, Options{})
	later := testNow.Add(time.Hour)
	tests := []struct {
		name string
		rev  Revocation
	}{
		{"unknown kind", Revocation{Kind: "email", Value: "x", ExpiresAt: later}},
		{"empty value", Revocation{Kind: RevokeTokenID, ExpiresAt: later}},
		{"expiry in the past", Revocation{Kind: RevokeTokenID, Value: "x", ExpiresAt: testNow}},
		{"unknown issuer", Revocation{Kind: RevokeTokenID, Value: "x", Issuer: "nope", ExpiresAt: later}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := a.Revoke(context.Background(), tt.rev); !errors.Is(err, ErrInvalidRevocation) {
				t.Errorf("Revoke = %v, want ErrInvalidRevocation", err)
			}
		})
	}
}

// redisAuthenticator starts an Authenticator that shares revocations
// through the Redis server at addr and uses the real clock.
func redisAuthenticator(t *testing.T, addr string, rc RevocationConfig) *Authenticator {
	t.Helper()
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:        []string{addr},
		DialTimeout:  200 * time.Millisecond,
		ReadTimeout:  200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond,
		MaxRetries:   -1,
	})
	t.Cleanup(func() { _ = client.Close() })
	cfg := Config{Issuers: []IssuerConfig{staticIssuer(t)}, Revocation: rc}
	return newTestAuthenticator(t, cfg, Options{Redis: client, Now: time.Now})
}

func TestRevocationSharedThroughRedis(t *testing.T) {
	srv := redisproc.Start(t)
	rc := RevocationConfig{SyncInterval: 200 * time.Millisecond, MaxStaleness: time.Second}
	first := redisAuthenticator(t, srv.Addr, rc)
	second := redisAuthenticator(t, srv.Addr, rc)
	k := testSigningKeys(t)
	token := signClaims(t, "RS256", "rsa1", k.rsa, validClaims(time.Now()))
	ctx := context.Background()

	if _, err := second.VerifyToken(ctx, token, nil); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	if err := first.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}

	revoked := time.Now()
	err := first.Revoke(ctx, Revocation{Kind: RevokeTokenID, Value: "token-1", ExpiresAt: revoked.Add(time.Hour)})
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := first.VerifyToken(ctx, token, nil); reasonOf(err) != pdp.ReasonTokenRevoked {
		t.Fatalf("replica that revoked: reason = %q, want token.revoked", reasonOf(err))
	}
	for {
		_, err := second.VerifyToken(ctx, token, nil)
		if reasonOf(err) == pdp.ReasonTokenRevoked {
			break
		}
		if time.Since(revoked) > time.Second {
			t.Fatalf("second replica still accepts the token 1s after the revocation (err %v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("second replica saw the revocation after %s", time.Since(revoked).Round(time.Millisecond))

	list, err := second.Revocations(ctx)
	if err != nil {
		t.Fatalf("Revocations: %v", err)
	}
	if len(list) != 1 || list[0].Kind != RevokeTokenID {
		t.Errorf("Revocations = %+v, want the jti revocation", list)
	}
}

func TestRevocationFailsClosedWithoutRedis(t *testing.T) {
	srv := redisproc.Start(t)
	rc := RevocationConfig{SyncInterval: 100 * time.Millisecond, MaxStaleness: 600 * time.Millisecond}
	a := redisAuthenticator(t, srv.Addr, rc)
	k := testSigningKeys(t)
	token := signClaims(t, "RS256", "rsa1", k.rsa, validClaims(time.Now()))
	ctx := context.Background()
	if _, err := a.VerifyToken(ctx, token, nil); err != nil {
		t.Fatalf("with Redis up: %v", err)
	}

	srv.Kill()
	killed := time.Now()
	for {
		_, err := a.VerifyToken(ctx, token, nil)
		if reasonOf(err) == pdp.ReasonStateUnavailable {
			break
		}
		if err != nil {
			t.Fatalf("unexpected error while Redis is down: %v", err)
		}
		if time.Since(killed) > rc.MaxStaleness+time.Second {
			t.Fatalf("token still accepted %s after Redis was killed", time.Since(killed))
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(killed)
	if elapsed < rc.MaxStaleness-rc.SyncInterval {
		t.Errorf("failed closed after %s, before the staleness bound %s", elapsed, rc.MaxStaleness)
	}
	t.Logf("failed closed %s after Redis was killed", elapsed.Round(time.Millisecond))
	if err := a.Ready(); err == nil {
		t.Error("Ready = nil while revocations are stale")
	}
	if err := a.Revoke(ctx, Revocation{Kind: RevokeSubject, Value: "x", ExpiresAt: time.Now().Add(time.Hour)}); err == nil {
		t.Error("Revoke succeeded while Redis is down")
	}

	srv.Restart()
	deadline := time.Now().Add(3 * time.Second)
	for {
		if _, err := a.VerifyToken(ctx, token, nil); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("token still denied 3s after Redis came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
