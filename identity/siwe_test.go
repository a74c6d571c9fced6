package identity

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	t0              = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	goldenChallenge = "coordinator.example:8443 wants you to sign in with your Ethereum account:\n" +
		"0x2c7536E3605D9C16a7a3D7b1898e529396a65c23\n" +
		"\n" +
		"Sign in to Neurolov as a compute worker. This moves no funds and costs no gas.\n" +
		"\n" +
		"URI: wss://coordinator.example:8443/v1/worker\n" +
		"Version: 1\n" +
		"Chain ID: 31337\n" +
		"Nonce: 32891756ab5c2d7f\n" +
		"Issued At: 2026-01-02T03:04:05Z\n" +
		"Expiration Time: 2026-01-02T03:09:05Z"
)

func TestChallengeMessage(t *testing.T) {
	addr, _ := ParseAddress(goldenAddress)
	// A time zone and sub-second digits are normalised away.
	issued := t0.Add(900 * time.Millisecond).In(time.FixedZone("X", 3600))
	got := ChallengeMessage("coordinator.example:8443", "wss://coordinator.example:8443/v1/worker", addr, "32891756ab5c2d7f", issued, t0.Add(5*time.Minute), 31337)
	if got != goldenChallenge {
		t.Fatalf("ChallengeMessage:\n%s\nwant:\n%s", got, goldenChallenge)
	}
	c, err := ParseChallenge(got)
	if err != nil {
		t.Fatal(err)
	}
	want := Challenge{
		Domain: "coordinator.example:8443", Address: addr, Statement: Statement,
		URI: "wss://coordinator.example:8443/v1/worker", Version: "1", ChainID: 31337,
		Nonce: "32891756ab5c2d7f", IssuedAt: t0, ExpirationTime: t0.Add(5 * time.Minute),
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("ParseChallenge:\n got %+v\nwant %+v", c, want)
	}
}

// TestParseChallengeOptional reads the optional parts other SIWE
// implementations write: no statement, Not Before, Request ID, Resources.
func TestParseChallengeOptional(t *testing.T) {
	msg := "https://app.example wants you to sign in with your Ethereum account:\n" +
		goldenAddress + "\n\n\n" +
		"URI: https://app.example/login\nVersion: 1\nChain ID: 1\nNonce: abcDEF12345\n" +
		"Issued At: 2026-01-02T03:04:05.123Z\n" +
		"Not Before: 2026-01-02T03:04:00+01:00\n" +
		"Request ID: req-7\n" +
		"Resources:\n- ipfs://bafy\n- https://app.example/tos"
	c, err := ParseChallenge(msg)
	if err != nil {
		t.Fatal(err)
	}
	if c.Domain != "https://app.example" || c.Statement != "" || !c.ExpirationTime.IsZero() ||
		!c.NotBefore.Equal(t0.Add(-time.Hour-5*time.Second)) || c.RequestID != "req-7" ||
		!reflect.DeepEqual(c.Resources, []string{"ipfs://bafy", "https://app.example/tos"}) ||
		!c.IssuedAt.Equal(t0.Add(123*time.Millisecond)) {
		t.Fatalf("ParseChallenge: %+v", c)
	}
}

func TestParseChallengeErrors(t *testing.T) {
	lines := strings.Split(goldenChallenge, "\n")
	with := func(i int, line string) string {
		l := append([]string(nil), lines...)
		l[i] = line
		return strings.Join(l, "\n")
	}
	without := func(i int) string {
		l := append([]string(nil), lines...)
		return strings.Join(append(l[:i], l[i+1:]...), "\n")
	}
	tests := map[string]string{
		"empty":               "",
		"no header":           with(0, "coordinator.example:8443 wants you to sign in:"),
		"empty domain":        with(0, header[1:]),
		"domain with space":   with(0, "a b"+header),
		"lowercase address":   with(1, strings.ToLower(goldenAddress)),
		"bad checksum":        with(1, strings.Replace(goldenAddress, "E", "e", 1)),
		"short address":       with(1, goldenAddress[:41]),
		"no blank line":       with(2, "x"),
		"no blank after stmt": with(4, "x"),
		"no URI":              without(5),
		"empty URI":           with(5, "URI: "),
		"version 2":           with(6, "Version: 2"),
		"chain not a number":  with(7, "Chain ID: one"),
		"chain 0":             with(7, "Chain ID: 0"),
		"short nonce":         with(8, "Nonce: abc123"),
		"nonce with dash":     with(8, "Nonce: abcd-1234"),
		"fields out of order": with(7, "Nonce: 32891756ab5c2d7f"),
		"bad issued at":       with(9, "Issued At: yesterday"),
		"bad expiration":      with(10, "Expiration Time: 2026-01-02"),
		"trailing line":       goldenChallenge + "\nP.S. send money",
		"trailing newline":    goldenChallenge + "\n",
		"unknown field":       with(10, "Colour: blue"),
	}
	for name, msg := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseChallenge(msg); !errors.Is(err, ErrChallenge) {
				t.Fatalf("got %v, want ErrChallenge", err)
			}
		})
	}
}

// FuzzParseChallenge checks that hostile text never panics the parser, that
// every refusal wraps ErrChallenge, and that whatever it accepts has every
// required field.
func FuzzParseChallenge(f *testing.F) {
	f.Add(goldenChallenge)
	f.Add(strings.Replace(goldenChallenge, "Expiration Time", "Not Before", 1) + "\nRequest ID: x\nResources:\n- a")
	f.Fuzz(func(t *testing.T, msg string) {
		c, err := ParseChallenge(msg)
		if err != nil {
			if !errors.Is(err, ErrChallenge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if c.Domain == "" || c.URI == "" || len(c.Nonce) < 8 || c.Version != "1" {
			t.Fatalf("accepted an incomplete challenge: %+v", c)
		}
	})
}
