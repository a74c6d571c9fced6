package identity

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrChallenge reports text that is not an EIP-4361 message this package
// can read.
var ErrChallenge = errors.New("identity: malformed challenge")

// Statement is the human-readable line of every challenge: what a wallet
// shows the person asked to sign.
const Statement = "Sign in to Neurolov as a compute worker. This moves no funds and costs no gas."

// Challenge is a parsed EIP-4361 (Sign-In with Ethereum) message.
type Challenge struct {
	// Domain is the coordinator's host (an optional "scheme://" included).
	Domain string
	// Address is the account asked to sign.
	Address [20]byte
	// Statement is the optional human-readable line ("" if absent).
	Statement string
	// URI is the resource the sign-in is for.
	URI string
	// Version is the message format version, always "1".
	Version string
	// ChainID is the EIP-155 chain the account belongs to.
	ChainID int64
	// Nonce is the single-use random token.
	Nonce string
	// IssuedAt is when the message was made.
	IssuedAt time.Time
	// ExpirationTime is when it stops being valid (zero: never).
	ExpirationTime time.Time
	// NotBefore is when it starts being valid (zero: at once).
	NotBefore time.Time
	// RequestID is an optional identifier chosen by the issuer.
	RequestID string
	// Resources are optional URIs the sign-in covers.
	Resources []string
}

const header = " wants you to sign in with your Ethereum account:"

// ChallengeMessage returns the EIP-4361 message asking address to sign in to
// domain (the coordinator's host, e.g. "coordinator.example:8080") for uri,
// with the given nonce and validity window, on chain chainID, with
// Statement as its statement. Times are written in UTC, to the second:
//
//	coordinator.example wants you to sign in with your Ethereum account:
//	0x2c7536E3605D9C16a7a3D7b1898e529396a65c23
//
//	Sign in to Neurolov as a compute worker. This moves no funds and costs no gas.
//
//	URI: https://coordinator.example
//	Version: 1
//	Chain ID: 1
//	Nonce: 32891756ab5c2d7f
//	Issued At: 2026-01-02T03:04:05Z
//	Expiration Time: 2026-01-02T03:09:05Z
func ChallengeMessage(domain, uri string, address [20]byte, nonce string, issued, expires time.Time, chainID int64) string {
	var b strings.Builder
	b.WriteString(domain + header + "\n")
	b.WriteString(FormatAddress(address) + "\n\n")
	b.WriteString(Statement + "\n\n")
	b.WriteString("URI: " + uri + "\n")
	b.WriteString("Version: 1\n")
	b.WriteString("Chain ID: " + strconv.FormatInt(chainID, 10) + "\n")
	b.WriteString("Nonce: " + nonce + "\n")
	b.WriteString("Issued At: " + formatTime(issued) + "\n")
	b.WriteString("Expiration Time: " + formatTime(expires))
	return b.String()
}

func formatTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

// ParseChallenge reads an EIP-4361 message: the header line, the address
// (EIP-55 checksummed, as the standard requires), an optional statement,
// then URI, Version (1), Chain ID, Nonce (at least 8 letters and digits) and
// Issued At, then optionally Expiration Time, Not Before, Request ID and
// Resources, in that order, and nothing else. Errors wrap ErrChallenge.
func ParseChallenge(msg string) (Challenge, error) {
	var c Challenge
	p := lineParser{lines: strings.Split(msg, "\n")}

	first := p.next()
	domain, ok := strings.CutSuffix(first, header)
	if !ok || domain == "" || strings.ContainsAny(domain, " \t") {
		return c, p.errorf("first line %q is not %q", first, "<domain>"+header)
	}
	c.Domain = domain
	addrText := p.next()
	addr, err := ParseAddress(addrText)
	if err != nil || FormatAddress(addr) != addrText {
		return c, p.errorf("address %q is not an EIP-55 checksummed address", addrText)
	}
	c.Address = addr
	if line := p.next(); line != "" {
		return c, p.errorf("want an empty line after the address, got %q", line)
	}
	// Either "statement", "" or "" alone before the URI.
	switch line := p.peek(); {
	case strings.HasPrefix(line, "URI: "):
	case line == "":
		p.next()
	default:
		c.Statement = p.next()
		if line := p.next(); line != "" {
			return c, p.errorf("want an empty line after the statement, got %q", line)
		}
	}

	var issued, chain string
	for _, f := range []struct {
		name string
		dst  *string
	}{{"URI", &c.URI}, {"Version", &c.Version}, {"Chain ID", &chain}, {"Nonce", &c.Nonce}, {"Issued At", &issued}} {
		v, ok := p.field(f.name)
		if !ok {
			return c, p.errorf("want %q", f.name+": ")
		}
		*f.dst = v
	}
	if c.URI == "" {
		return c, p.errorf("empty URI")
	}
	if c.Version != "1" {
		return c, p.errorf("version %q, want 1", c.Version)
	}
	if c.ChainID, err = strconv.ParseInt(chain, 10, 64); err != nil || c.ChainID < 1 {
		return c, p.errorf("chain ID %q", chain)
	}
	if len(c.Nonce) < 8 || strings.IndexFunc(c.Nonce, notAlnum) >= 0 {
		return c, p.errorf("nonce %q is not 8 or more letters and digits", c.Nonce)
	}
	if c.IssuedAt, err = time.Parse(time.RFC3339, issued); err != nil {
		return c, p.errorf("issued at: %v", err)
	}
	if v, ok := p.field("Expiration Time"); ok {
		if c.ExpirationTime, err = time.Parse(time.RFC3339, v); err != nil {
			return c, p.errorf("expiration time: %v", err)
		}
	}
	if v, ok := p.field("Not Before"); ok {
		if c.NotBefore, err = time.Parse(time.RFC3339, v); err != nil {
			return c, p.errorf("not before: %v", err)
		}
	}
	if v, ok := p.field("Request ID"); ok {
		c.RequestID = v
	}
	if p.peek() == "Resources:" && p.more() {
		p.next()
		for p.more() && strings.HasPrefix(p.peek(), "- ") {
			c.Resources = append(c.Resources, strings.TrimPrefix(p.next(), "- "))
		}
	}
	if p.more() {
		return c, p.errorf("unexpected %q", p.peek())
	}
	return c, nil
}

func notAlnum(r rune) bool {
	return !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
}

type lineParser struct {
	lines []string
	i     int
}

func (p *lineParser) more() bool { return p.i < len(p.lines) }

func (p *lineParser) peek() string {
	if p.more() {
		return p.lines[p.i]
	}
	return ""
}

func (p *lineParser) next() string {
	s := p.peek()
	p.i++
	return s
}

// field consumes a "Name: value" line if the next line is one.
func (p *lineParser) field(name string) (string, bool) {
	if !p.more() {
		return "", false
	}
	v, ok := strings.CutPrefix(p.lines[p.i], name+": ")
	if ok {
		p.i++
	}
	return v, ok
}

func (p *lineParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrChallenge, min(p.i, len(p.lines)), fmt.Sprintf(format, args...))
}
