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
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/protocol"
)

// StatusBanned is the close code a coordinator ends a banned worker's
// connection with: one of the private codes (4000–4999), so that a worker
// tells a ban (stop for good) from a bad frame (1008: reconnect) by the code
// alone, even when the Goodbye that said why was lost.
const StatusBanned websocket.StatusCode = 4001

// StatusVersion is the close code a coordinator ends the connection of a
// worker speaking another protocol version with (protocol.ErrVersion): a
// worker stops rather than reconnect to be refused again, and a browser
// tab asks to be reloaded, since the page that serves the new client comes
// from the same coordinator. Like StatusBanned, the code alone says it: a
// Goodbye in the coordinator's version is one the old client cannot read.
const StatusVersion websocket.StatusCode = 4002

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
	// demand, when set (OnDemand), is the writer Flush starts; running
	// is whether one is writing.
	demand  *demandWriter
	running bool
	// queued is the tensor data, in bytes, of the TensorData chunks
	// queued and not yet written.
	queued atomic.Int64
}

// chunkBytes returns the tensor data m carries when it is a TensorData
// chunk, else 0.
func chunkBytes(m protocol.Message) int64 {
	if td, ok := m.(*protocol.TensorData); ok {
		return 4 * int64(len(td.Data))
	}
	return 0
}

// QueuedBytes returns the tensor data, in bytes, of the TensorData chunks
// queued and not yet written: how far a peer that stopped reading is
// behind (a coordinator refuses to queue more tensors for it).
func (o *Outbox) QueuedBytes() int64 { return o.queued.Load() }

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
		if n := chunkBytes(m); n > 0 {
			o.queued.Add(n)
		}
	}
	o.mu.Unlock()
}

// Flush wakes the writer to send what is queued (with OnDemand, starts
// one when none is writing).
func (o *Outbox) Flush() {
	if o.demand != nil {
		o.mu.Lock()
		start := !o.running && !o.closed && len(o.out) > 0
		o.running = o.running || start
		o.mu.Unlock()
		if start {
			go o.drain()
		}
		return
	}
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// Close drops what is queued and refuses more.
func (o *Outbox) Close() {
	o.mu.Lock()
	o.closed = true
	var n int64
	for _, m := range o.out {
		n += chunkBytes(m)
	}
	o.queued.Add(-n)
	o.out = nil
	o.mu.Unlock()
}

// demandWriter is what an OnDemand outbox's writers write with.
type demandWriter struct {
	ctx    context.Context
	ws     *websocket.Conn
	tooBig func(protocol.Message, error)
	failed func(error)
}

// OnDemand makes the outbox write without a goroutine of its own: Flush
// starts a writer when messages wait and none is writing, and the writer
// ends once the queue is empty, so that an idle connection holds no writer
// (nor its encoder's buffer). A message that fits no frame is passed to
// tooBig and skipped; a write that fails (or ctx ending) is passed to
// failed, once, and closes the outbox. Call it before the first Flush,
// instead of Run.
func (o *Outbox) OnDemand(ctx context.Context, ws *websocket.Conn, tooBig func(protocol.Message, error), failed func(error)) {
	o.demand = &demandWriter{ctx: ctx, ws: ws, tooBig: tooBig, failed: failed}
}

// encoders are the OnDemand writers' encoders; one that grew past
// maxPooledEncoder (a frame of large tensors) is dropped, not kept.
var encoders = sync.Pool{New: func() any { return new(protocol.Encoder) }}

const maxPooledEncoder = 1 << 20

// drain is an OnDemand writer: it writes until the queue is empty.
func (o *Outbox) drain() {
	d := o.demand
	enc := encoders.Get().(*protocol.Encoder)
	defer func() {
		if cap(enc.Bytes()) <= maxPooledEncoder {
			encoders.Put(enc)
		}
	}()
	for {
		o.mu.Lock()
		msgs := o.out
		o.out = nil
		if len(msgs) == 0 || o.closed {
			o.running = false
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		err := d.ctx.Err()
		if err == nil {
			err = o.write(d.ctx, d.ws, enc, msgs, d.tooBig)
		}
		if err != nil {
			o.Close()
			o.mu.Lock()
			o.running = false
			o.mu.Unlock()
			d.failed(err)
			return
		}
	}
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
		if err := o.write(ctx, ws, &enc, msgs, tooBig); err != nil {
			return err
		}
	}
}

// write writes msgs to ws, as many per frame as fit.
func (o *Outbox) write(ctx context.Context, ws *websocket.Conn, enc *protocol.Encoder, msgs []protocol.Message, tooBig func(protocol.Message, error)) error {
	for i := 0; i < len(msgs); {
		enc.Reset()
		var chunked int64
		for i < len(msgs) {
			if err := enc.Append(msgs[i]); err != nil {
				if enc.Count() == 0 {
					o.queued.Add(-chunkBytes(msgs[i]))
					tooBig(msgs[i], err)
					i++
					continue
				}
				break
			}
			chunked += chunkBytes(msgs[i])
			i++
		}
		if enc.Count() == 0 {
			continue
		}
		err := ws.Write(ctx, websocket.MessageBinary, enc.Bytes())
		o.queued.Add(-chunked)
		if err != nil {
			for _, m := range msgs[i:] {
				o.queued.Add(-chunkBytes(m))
			}
			return err
		}
		if o.OnFrame != nil {
			o.OnFrame(enc.Count())
		}
	}
	return nil
}
