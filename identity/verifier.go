package identity

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Reasons Verifier.Check refuses a sign-in. Each wraps with detail; test
// with errors.Is. ErrChallenge (unreadable text) and ErrSignature (bad or
// someone else's signature) complete the set.
var (
	// ErrDomain: the challenge names another domain, URI or chain.
	ErrDomain = errors.New("identity: challenge for another domain")
	// ErrAddress: the challenge names another address than the worker claims.
	ErrAddress = errors.New("identity: challenge for another address")
	// ErrExpired: the challenge's expiration time has passed.
	ErrExpired = errors.New("identity: challenge expired")
	// ErrNotYetValid: the challenge's issue or not-before time is still ahead.
	ErrNotYetValid = errors.New("identity: challenge not yet valid")
	// ErrNotIssued: this Verifier did not issue the challenge (unknown,
	// forgotten or altered).
	ErrNotIssued = errors.New("identity: challenge not issued here")
	// ErrNonceReused: the challenge was already presented once.
	ErrNonceReused = errors.New("identity: challenge nonce already used")
)

// VerifierConfig configures a Verifier. Only Domain is required.
type VerifierConfig struct {
	// Domain is the coordinator's host as workers reach it, e.g.
	// "coordinator.example:8080".
	Domain string
	// URI is the endpoint the sign-in is for; default "https://" + Domain.
	URI string
	// ChainID is the EIP-155 chain of the workers' accounts; default 1.
	ChainID int64
	// TTL is how long a challenge stays valid; default 5 minutes.
	TTL time.Duration
	// MaxNonces bounds the challenges remembered (issued or used, until they
	// expire); when full, the oldest is forgotten. Default 100,000.
	MaxNonces int
	// Now is the clock Issue reads; default time.Now.
	Now func() time.Time
}

// Verifier issues sign-in challenges and checks the signed answers, for the
// coordinator. A challenge is single-use: the first Check that presents it
// consumes its nonce, whether it passes or not. Memory is bounded by
// MaxNonces, so a flood of connections cannot exhaust it (it can only push
// out challenges that are still waiting for their answer). A Verifier is
// safe for concurrent use.
type Verifier struct {
	cfg VerifierConfig

	mu     sync.Mutex
	nonces map[string]*issued
	queue  []string // nonces in issue (and so expiry) order
	head   int      // queue[:head] are gone
}

type issued struct {
	message string
	address [20]byte
	expires time.Time
	used    bool
}

// NewVerifier returns a Verifier for cfg, with defaults filled in.
func NewVerifier(cfg VerifierConfig) *Verifier {
	if cfg.URI == "" {
		cfg.URI = "https://" + cfg.Domain
	}
	if cfg.ChainID == 0 {
		cfg.ChainID = 1
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Minute
	}
	if cfg.MaxNonces <= 0 {
		cfg.MaxNonces = 100_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{cfg: cfg, nonces: make(map[string]*issued)}
}

// Issue returns a new challenge for address, and its nonce.
func (v *Verifier) Issue(address [20]byte) (message, nonce string) {
	now := v.cfg.Now()
	nonce = NewNonce()
	message = ChallengeMessage(v.cfg.Domain, v.cfg.URI, address, nonce, now, now.Add(v.cfg.TTL), v.cfg.ChainID)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.prune(now)
	for len(v.nonces) >= v.cfg.MaxNonces {
		v.pop()
	}
	v.nonces[nonce] = &issued{message: message, address: address, expires: now.Add(v.cfg.TTL).Truncate(time.Second)}
	v.queue = append(v.queue, nonce)
	return message, nonce
}

// Check verifies that sig is claimed's personal_sign signature over message,
// a challenge this Verifier issued to claimed, presented for the first time
// and before it expired. It returns nil or an error wrapping ErrChallenge,
// ErrDomain, ErrAddress, ErrExpired, ErrNotYetValid, ErrNotIssued,
// ErrNonceReused or ErrSignature.
func (v *Verifier) Check(message string, sig [65]byte, claimed [20]byte, now time.Time) error {
	c, err := ParseChallenge(message)
	if err != nil {
		return err
	}
	switch {
	case c.Domain != v.cfg.Domain:
		return fmt.Errorf("%w: %q, this coordinator is %q", ErrDomain, c.Domain, v.cfg.Domain)
	case c.URI != v.cfg.URI:
		return fmt.Errorf("%w: URI %q, this coordinator is %q", ErrDomain, c.URI, v.cfg.URI)
	case c.ChainID != v.cfg.ChainID:
		return fmt.Errorf("%w: chain %d, this coordinator uses %d", ErrDomain, c.ChainID, v.cfg.ChainID)
	case c.Address != claimed:
		return fmt.Errorf("%w: challenge for %s, worker claims %s", ErrAddress, FormatAddress(c.Address), FormatAddress(claimed))
	case c.ExpirationTime.IsZero():
		return fmt.Errorf("%w: no expiration time", ErrNotIssued)
	case !now.Before(c.ExpirationTime):
		return fmt.Errorf("%w: at %s, now %s", ErrExpired, c.ExpirationTime.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case now.Before(c.IssuedAt) || now.Before(c.NotBefore):
		return fmt.Errorf("%w: issued %s, not before %s, now %s", ErrNotYetValid, c.IssuedAt.Format(time.RFC3339), c.NotBefore.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if err := v.consume(c.Nonce, message, claimed, now); err != nil {
		return err
	}
	signer, err := Recover(message, sig)
	if err != nil {
		return err
	}
	if signer != claimed {
		return fmt.Errorf("%w: signed by %s, not %s", ErrSignature, FormatAddress(signer), FormatAddress(claimed))
	}
	return nil
}

// consume marks the nonce used, checking that it was issued for exactly
// this message.
func (v *Verifier) consume(nonce, message string, claimed [20]byte, now time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.prune(now)
	e := v.nonces[nonce]
	switch {
	case e == nil:
		return fmt.Errorf("%w: unknown nonce %q", ErrNotIssued, nonce)
	case e.used:
		return fmt.Errorf("%w: nonce %q", ErrNonceReused, nonce)
	}
	e.used = true
	if e.message != message || e.address != claimed {
		return fmt.Errorf("%w: the text differs from the challenge issued with nonce %q", ErrNotIssued, nonce)
	}
	return nil
}

// prune forgets challenges that expired by now: a replay of one fails as
// expired. Entries leave in issue order, which is expiry order.
func (v *Verifier) prune(now time.Time) {
	for v.head < len(v.queue) {
		e := v.nonces[v.queue[v.head]]
		if e != nil && now.Before(e.expires) {
			break
		}
		v.pop()
	}
}

// pop forgets the oldest challenge.
func (v *Verifier) pop() {
	delete(v.nonces, v.queue[v.head])
	v.queue[v.head] = ""
	v.head++
	if v.head > 1024 && v.head > len(v.queue)/2 {
		v.queue = append(v.queue[:0], v.queue[v.head:]...)
		v.head = 0
	}
}

// Remembered returns how many challenges the Verifier holds (issued or
// used, not yet expired).
func (v *Verifier) Remembered() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.nonces)
}
