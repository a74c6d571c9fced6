package identity

import (
	"crypto/ecdsa"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a time the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

func newTestVerifier(t *testing.T) (*Verifier, *clock) {
	t.Helper()
	clk := &clock{now: t0}
	return NewVerifier(VerifierConfig{Domain: "coord.example", TTL: time.Minute, MaxNonces: 100, Now: clk.Now}), clk
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSign(t testing.TB, key *ecdsa.PrivateKey, msg string) [65]byte {
	t.Helper()
	sig, err := Sign(key, msg)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestVerifierAccepts(t *testing.T) {
	v, clk := newTestVerifier(t)
	key := mustKey(t)
	msg, nonce := v.Issue(Address(key))
	c, err := ParseChallenge(msg)
	if err != nil {
		t.Fatal(err)
	}
	if c.Nonce != nonce || c.Domain != "coord.example" || c.URI != "https://coord.example" || c.ChainID != 1 ||
		c.Address != Address(key) || !c.ExpirationTime.Equal(t0.Add(time.Minute)) {
		t.Fatalf("issued challenge %+v", c)
	}
	if err := v.Check(msg, mustSign(t, key, msg), Address(key), clk.Add(59*time.Second)); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// TestVerifierRejects runs every rejection path, each with its own
// sentinel. Each case gets a fresh verifier, a worker key and a challenge
// issued to it, and may alter what is presented.
func TestVerifierRejects(t *testing.T) {
	type input struct {
		msg     string
		sig     [65]byte
		claimed [20]byte
		now     time.Time
	}
	other := mustKey(t)
	tests := []struct {
		name  string
		alter func(t *testing.T, v *Verifier, key *ecdsa.PrivateKey, in *input)
		want  error
	}{
		{"malformed", func(t *testing.T, v *Verifier, key *ecdsa.PrivateKey, in *input) {
			in.msg = "hello"
			in.sig = mustSign(t, key, in.msg)
		}, ErrChallenge},
		{"wrong domain", func(t *testing.T, v *Verifier, key *ecdsa.PrivateKey, in *input) {
			in.msg, _ = NewVerifier(VerifierConfig{Domain: "evil.example", Now: v.cfg.Now}).Issue(in.claimed)
			in.sig = mustSign(t, key, in.msg)
		}, ErrDomain},
		{"wrong URI", func(t *testing.T, v *Verifier, key *ecdsa.PrivateKey, in *input) {
			in.msg = strings.Replace(in.msg, "URI: https://coord.example", "URI: https://coord.example/other", 1)
			in.sig = mustSign(t, key, in.msg)
		}, ErrDomain},
		{"wrong chain", func(t *testing.T, v *Verifier, key *ecdsa.PrivateKey, in *input) {
			in.msg = strings.Replace(in.msg, "Chain ID: 1\n", "Chain ID: 5\n", 1)
			in.sig = mustSign(t, key, in.msg)
		}, ErrDomain},
		{"wrong address", func(t *testing.T, v *Verifier, key *ecdsa.PrivateKey, in *input) {
			in.claimed = Address(other) // claims another address than the challenge names
		}, ErrAddress},
		{"expired", func(t *testing.T, v *Verifier, key *ecdsa.PrivateKey, in *input) {
			in.now = t0.Add(time.Minute)
		}, ErrExpired},
		{"not yet valid", func(t *testing.T, v *Verifier, key *ecdsa.PrivateKey, in *input) {
			in.now = t0.Add(-time.Second)
		}, ErrNotYetValid},
		{"not issued", func(t *testing.T, v *Verifier, key *ecdsa.PrivateKey, in *input) {
			in.msg = ChallengeMessage("coord.example", "https://coord.example", in.claimed, NewNonce(), t0, t0.Add(time.Minute), 1)
			in.sig = mustSign(t, key, in.msg)
		}, ErrNotIssued},
		{"altered text", func(t *testing.T, v *Verifier, key *ecdsa.PrivateKey, in *input) {
			in.msg = strings.Replace(in.msg, "Expiration Time: 2026-01-02T03:05:05Z", "Expiration Time: 2027-01-02T03:05:05Z", 1)
			in.sig = mustSign(t, key, in.msg)
		}, ErrNotIssued},
		{"reused nonce", func(t *testing.T, v *Verifier, key *ecdsa.PrivateKey, in *input) {
			if err := v.Check(in.msg, in.sig, in.claimed, in.now); err != nil {
				t.Fatalf("first use: %v", err)
			}
		}, ErrNonceReused},
		{"signed by another key", func(t *testing.T, v *Verifier, key *ecdsa.PrivateKey, in *input) {
			in.sig = mustSign(t, other, in.msg)
		}, ErrSignature},
		{"signature over other text", func(t *testing.T, v *Verifier, key *ecdsa.PrivateKey, in *input) {
			in.sig = mustSign(t, key, in.msg+" ")
		}, ErrSignature},
		{"garbage signature", func(t *testing.T, v *Verifier, key *ecdsa.PrivateKey, in *input) {
			in.sig = [65]byte{1, 2, 3, 64: 27}
		}, ErrSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := newTestVerifier(t)
			key := mustKey(t)
			in := input{claimed: Address(key), now: t0.Add(30 * time.Second)}
			in.msg, _ = v.Issue(in.claimed)
			in.sig = mustSign(t, key, in.msg)
			tc.alter(t, v, key, &in)
			err := v.Check(in.msg, in.sig, in.claimed, in.now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			for _, s := range []error{ErrChallenge, ErrDomain, ErrAddress, ErrExpired, ErrNotYetValid, ErrNotIssued, ErrNonceReused, ErrSignature} {
				if s != tc.want && errors.Is(err, s) {
					t.Errorf("error %v also matches %v", err, s)
				}
			}
		})
	}
}

// TestVerifierFailedAttemptConsumes checks that a challenge answered wrongly
// cannot be answered again.
func TestVerifierFailedAttemptConsumes(t *testing.T) {
	v, clk := newTestVerifier(t)
	key := mustKey(t)
	msg, _ := v.Issue(Address(key))
	now := clk.Add(time.Second)
	if err := v.Check(msg, mustSign(t, mustKey(t), msg), Address(key), now); !errors.Is(err, ErrSignature) {
		t.Fatalf("first attempt: %v", err)
	}
	if err := v.Check(msg, mustSign(t, key, msg), Address(key), now); !errors.Is(err, ErrNonceReused) {
		t.Fatalf("second attempt: got %v, want ErrNonceReused", err)
	}
}

// TestVerifierBounded checks that memory stays bounded: expired challenges
// are forgotten, and when full the oldest goes first.
func TestVerifierBounded(t *testing.T) {
	v, clk := newTestVerifier(t) // MaxNonces 100, TTL 1 minute
	key := mustKey(t)
	addr := Address(key)
	var msgs []string
	for range 150 {
		m, _ := v.Issue(addr)
		msgs = append(msgs, m)
	}
	if n := v.Remembered(); n != 100 {
		t.Fatalf("remembers %d challenges, want the limit 100", n)
	}
	now := clk.Add(time.Second)
	if err := v.Check(msgs[0], mustSign(t, key, msgs[0]), addr, now); !errors.Is(err, ErrNotIssued) {
		t.Errorf("oldest challenge after overflow: got %v, want ErrNotIssued", err)
	}
	if err := v.Check(msgs[149], mustSign(t, key, msgs[149]), addr, now); err != nil {
		t.Errorf("newest challenge: %v", err)
	}
	clk.Add(2 * time.Minute)
	v.Issue(addr)
	if n := v.Remembered(); n != 1 {
		t.Errorf("after expiry remembers %d challenges, want 1", n)
	}
	// Many more rounds keep the queue compacted and the map bounded.
	for range 5000 {
		v.Issue(addr)
	}
	v.mu.Lock()
	q, h := len(v.queue), v.head
	v.mu.Unlock()
	if v.Remembered() != 100 || q-h != 100 || q > 3000 {
		t.Errorf("remembered %d, queue %d with head %d", v.Remembered(), q, h)
	}
}

func TestVerifierConcurrent(t *testing.T) {
	v, clk := newTestVerifier(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			key, err := NewKey()
			if err != nil {
				errs <- err
				return
			}
			for range 5 {
				msg, _ := v.Issue(Address(key))
				sig, err := Sign(key, msg)
				if err == nil {
					err = v.Check(msg, sig, Address(key), clk.Now())
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
