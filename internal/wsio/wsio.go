// Package wsio carries protocol frames over a coder/websocket connection
// for both ends of the wire — the coordinator and the worker (native and
// browser): reading one binary message into a reused buffer, and an outbox
// that packs every queued message into as few frames as fit, so that a
// burst of small messages costs one write (coder/websocket flushes every
// Write).
package wsio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/protocol"
)

// ErrText reports a text message where frames are binary.
var ErrText = fmt.Errorf("%w: text message; frames are binary", protocol.ErrMalformed)

// ReadFrame reads one binary message into buf (reused; grown as needed)
// and returns it. The connection's read limit bounds its size.
func ReadFrame(ctx context.Context, ws *websocket.Conn, buf []byte) ([]byte, error) {
	typ, r, err := ws.Reader(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, ErrText
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Outbox queues messages from any goroutine and writes them in batches.
type Outbox struct {
	// OnFrame, when set before Run, is told the number of messages in
	// each frame Run has written (for metrics of the batching factor).
	OnFrame func(messages int)

	mu     sync.Mutex
	out    []protocol.Message
	closed bool
	notify chan struct{}
}

// NewOutbox returns an empty outbox.
func NewOutbox() *Outbox { return &Outbox{notify: make(chan struct{}, 1)} }

// Enqueue queues m and wakes the writer; m must not change afterwards (it
// is encoded later). Messages queued after Close are dropped.
func (o *Outbox) Enqueue(m protocol.Message) {
	o.Stage(m)
	o.Flush()
}

// Stage queues m like Enqueue but leaves the writer asleep until the next
// Flush (or Enqueue), so that a producer with a burst of messages to send
// has them written together rather than the first few in a frame of their
// own while it produces the rest.
func (o *Outbox) Stage(m protocol.Message) {
	o.mu.Lock()
	if !o.closed {
		o.out = append(o.out, m)
	}
	o.mu.Unlock()
}

// Flush wakes the writer to send what is queued.
func (o *Outbox) Flush() {
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// Close drops what is queued and refuses more.
func (o *Outbox) Close() {
	o.mu.Lock()
	o.closed = true
	o.out = nil
	o.mu.Unlock()
}

// Run writes queued messages to ws, as many per frame as fit, until ctx
// ends or a write fails (it returns that error). A message that fits no
// frame is passed to tooBig and skipped.
func (o *Outbox) Run(ctx context.Context, ws *websocket.Conn, tooBig func(protocol.Message, error)) error {
	var enc protocol.Encoder
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-o.notify:
		}
		o.mu.Lock()
		msgs := o.out
		o.out = nil
		o.mu.Unlock()
		for i := 0; i < len(msgs); {
			enc.Reset()
			for i < len(msgs) {
				if err := enc.Append(msgs[i]); err != nil {
					if enc.Count() == 0 {
						tooBig(msgs[i], err)
						i++
						continue
					}
					break
				}
				i++
			}
			if enc.Count() == 0 {
				continue
			}
			if err := ws.Write(ctx, websocket.MessageBinary, enc.Bytes()); err != nil {
				return err
			}
			if o.OnFrame != nil {
				o.OnFrame(enc.Count())
			}
		}
	}
}
