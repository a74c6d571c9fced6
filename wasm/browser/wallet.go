package browser

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

type signResult struct {
	sig [65]byte
	err error
}

// walletSigner signs the coordinator's challenge with the visitor's wallet:
// window.ethereum lives on the page, so the worker posts {type:"sign"} and
// waits for the page's {type:"signature"}. Every connection (reconnections
// included) asks the wallet again.
type walletSigner struct {
	addr [20]byte
	c    *Client
	ctx  context.Context
}

// Address returns the wallet's address.
func (w *walletSigner) Address() [20]byte { return w.addr }

// SignText asks the page to have the wallet sign message (personal_sign).
func (w *walletSigner) SignText(message string) ([65]byte, error) {
	return w.c.requestSignature(w.ctx, message)
}

func (c *Client) requestSignature(ctx context.Context, message string) ([65]byte, error) {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan signResult, 1)
	c.signs[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.signs, id)
		c.mu.Unlock()
	}()
	c.p.Post(map[string]any{"type": "sign", "id": id, "message": message})
	t := time.NewTimer(signTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.sig, r.err
	case <-ctx.Done():
		return [65]byte{}, fmt.Errorf("%w: %w", ErrSignature, ctx.Err())
	case <-t.C:
		return [65]byte{}, fmt.Errorf("%w: no answer within %s", ErrSignature, signTimeout)
	}
}

// ProvideSignature delivers the page's answer to sign request id: the
// wallet's 65-byte signature in hex (0x…), or, when the wallet refused,
// errMsg. It reports an unknown id or a malformed signature.
func (c *Client) ProvideSignature(id int, signature, errMsg string) error {
	c.mu.Lock()
	ch, ok := c.signs[id]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: no sign request %d is waiting", ErrSignature, id)
	}
	var r signResult
	if errMsg != "" {
		r.err = fmt.Errorf("%w: %s", ErrSignature, errMsg)
	} else if r.sig, r.err = parseSignature(signature); r.err != nil {
		r.err = fmt.Errorf("%w: %w", ErrSignature, r.err)
	}
	select {
	case ch <- r:
	default: // answered twice: the first answer stands
	}
	return r.err
}

func parseSignature(s string) ([65]byte, error) {
	var sig [65]byte
	b, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "0x"))
	if err != nil || len(b) != 65 {
		return sig, fmt.Errorf("signature %q is not 65 bytes of hex", s)
	}
	copy(sig[:], b)
	return sig, nil
}
