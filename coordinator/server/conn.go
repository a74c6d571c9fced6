package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/internal/wsio"
	"github.com/neurolov/neurolov/protocol"
	"github.com/neurolov/neurolov/tensor"
)

// Close codes sent to workers.
const (
	statusGoingAway = websocket.StatusGoingAway
	statusBanned    = wsio.StatusBanned
	statusVersion   = wsio.StatusVersion
	statusBadFrame  = websocket.StatusPolicyViolation
	statusTooBig    = websocket.StatusMessageTooBig
)

// conn is one worker connection. Its reader goroutine decodes frames into
// loop events; a writer goroutine, started when messages wait and ended
// when none do, batches them into frames (one write per batch:
// coder/websocket flushes every Write); a timer pings the worker. An idle
// connection holds the reader alone.
type conn struct {
	srv *Server
	ws  *websocket.Conn
	pc  *peerConn // the TCP connection under ws, which paces reads
	// frame is the buffer frames are read into (reader-owned).
	frame frameBuf
	id    scheduler.WorkerID // set by the loop at join
	addr  scheduler.Address
	caps  protocol.Capabilities
	// joined is when the handshake completed.
	joined time.Time
	// sent holds the hashes of tensors this connection has received
	// (loop-owned; nil until the first, see markSent).
	sent map[[32]byte]bool

	out *wsio.Outbox
	// staged is whether messages wait in out for the loop's next flush
	// (loop-owned).
	staged  bool
	ctx     context.Context
	cancel  context.CancelFunc
	closeMu sync.Once
	// closeDone is closed once a closeWith has finished closing.
	closeDone chan struct{}
	// pingMu guards pinger, the timer that pings the worker, and
	// pingStopped, set when the connection ends (see ping).
	pingMu      sync.Mutex
	pinger      *time.Timer
	pingStopped bool
}

// enqueue queues m for the writer, which is woken when the loop has
// handled the events at hand (Server.flush), so that what one burst of
// events sends a worker shares its frames. m must not change after the
// call (the writer encodes it later). Loop only: other goroutines call
// c.out.Enqueue.
func (c *conn) enqueue(m protocol.Message) {
	c.out.Stage(m)
	if !c.staged {
		c.staged = true
		c.srv.staged = append(c.srv.staged, c)
	}
}

// markSent records that c has been sent the tensor of hash h.
func (c *conn) markSent(h [32]byte) {
	if c.sent == nil {
		c.sent = make(map[[32]byte]bool)
	}
	c.sent[h] = true
}

// closeWith sends Goodbye and closes the connection with a status code and
// reason, in the background so the caller (often the loop) never blocks on
// the network. Safe from any goroutine; only the first call acts.
func (c *conn) closeWith(code websocket.StatusCode, reason string) {
	c.closeMu.Do(func() {
		c.out.Close()
		if len(reason) > 120 {
			reason = reason[:120] // close reasons must fit a control frame
		}
		go func() {
			defer close(c.closeDone)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if frame, err := protocol.Encode(&protocol.Goodbye{Reason: reason}); err == nil {
				_ = c.ws.Write(ctx, websocket.MessageBinary, frame)
			}
			_ = c.ws.Close(code, reason)
			c.cancel()
		}()
	})
}

// ServeWorker is the worker WebSocket endpoint (GET /v1/worker).
func (s *Server) ServeWorker(w http.ResponseWriter, r *http.Request) {
	hw := &hijackPeer{ResponseWriter: w, cfg: &s.cfg}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept wrote the HTTP error
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{srv: s, ws: ws, pc: hw.pc, frame: frameBuf{acct: account{b: &s.budgets.frames, reserve: frameReserve}}, out: wsio.NewOutbox(), ctx: ctx, cancel: cancel, closeDone: make(chan struct{})}
	c.setReadLimit(handshakeFrameSize)
	if err := s.handshake(ctx, c); err != nil {
		s.log.Info("worker handshake failed", "remote", r.RemoteAddr, "err", err)
		code, reason := statusBadFrame, err.Error()
		switch {
		case errors.Is(err, errTooBig):
			code = statusTooBig
		case errors.Is(err, protocol.ErrVersion):
			code = statusVersion
		case errors.Is(err, ErrBudget):
			code, reason = websocket.StatusTryAgainLater, budgetReason(err)
		}
		c.closeWith(code, reason)
		<-c.closeDone
		cancel()
		return
	}
	c.setReadLimit(protocol.MaxFrameSize)
	c.frame.acct.holder = c.addr.String() // its frames past the reserve are charged to its address
	c.startWriter()
	if err := s.request(event{kind: evJoin, conn: c}); err != nil {
		c.closeWith(statusGoingAway, "coordinator shutting down")
		<-c.closeDone
		cancel()
		return
	}
	s.log.Info("worker joined", "address", c.addr, "backend", c.caps.Backend, "device", c.caps.Device, "gflops", c.caps.GFLOPS)
	c.startPinging()
	// The reader goes on in a goroutine of its own, and this handler
	// returns: net/http's goroutine, its stack grown by the handshake, ends.
	go c.serve()
}

// handshakeFrameSize bounds a frame before the handshake has completed
// (Hello, Auth and Capabilities are small): an unauthenticated peer
// cannot make the coordinator read a 16 MiB frame, and its frames fit the
// connection's frameReserve, so that a spent frames budget never keeps a
// worker from joining.
const handshakeFrameSize = 64 << 10

// serve reads the joined connection's frames until it ends, then closes
// it, with the reason, and tells the loop.
func (c *conn) serve() {
	s := c.srv
	defer c.cancel()
	defer c.stopPinging()
	err := c.readLoop()
	switch {
	case errors.Is(err, io.EOF) || websocket.CloseStatus(err) != -1 || c.ctx.Err() != nil:
	case errors.Is(err, errTooBig):
		c.closeWith(statusTooBig, err.Error())
	case errors.Is(err, ErrBudget):
		s.log.Info("refusing worker connection", "address", c.addr, "err", err)
		c.closeWith(websocket.StatusTryAgainLater, budgetReason(err))
	case errors.Is(err, errSlow) || errors.Is(err, errSilent):
		s.log.Info("closing worker connection", "address", c.addr, "err", err)
		c.closeWith(statusBadFrame, paceReason(err))
	default:
		s.log.Info("closing worker connection", "address", c.addr, "err", err)
		c.closeWith(statusBadFrame, err.Error())
	}
	_ = s.send(event{kind: evLeave, conn: c})
	c.closeWith(websocket.StatusNormalClosure, "connection ended")
	<-c.closeDone
}

var errTooBig = errors.New("frame over the size limit")

// paceReason is the close reason for a connection cut by its peerConn's
// deadlines: that error's text, without what coder/websocket wrapped it
// in (a close reason holds 120 bytes).
func paceReason(err error) string {
	var pe *paceError
	if errors.As(err, &pe) {
		return pe.Error()
	}
	return err.Error()
}

// heldOverhead is the least a chunked output awaiting its Result counts
// against Config.MaxHeldOutputBytes, so that empty tensors cost too.
const heldOverhead = 256

// chunkedOutputBytes (256 MiB) bounds the unfinished chunked result tensors
// one worker may have in its connection's assembler, and is the default of
// Config.MaxHeldOutputBytes, the finished ones awaiting their Result.
const chunkedOutputBytes = 16 * protocol.MaxFrameSize

// maxQueuedTensorBytes bounds the tensor data queued for one worker when it
// Fetches more: a worker that asks for tensors faster than it reads them is
// closed rather than left to fill the coordinator's memory.
const maxQueuedTensorBytes = 1 << 30

// readFrame reads one binary message into c.frame, charged to the frames
// budget (see frameBuf), enforcing the frame limit; the caller calls
// c.frame.release once it has decoded the frame (readFrame does on an
// error).
func (c *conn) readFrame(ctx context.Context) (frame []byte, err error) {
	defer func() {
		c.pc.endMessage()
		if err != nil {
			c.frame.release()
			if isTooBig(err) {
				err = fmt.Errorf("%w: %v", errTooBig, err)
			}
		}
	}()
	typ, r, err := c.ws.Reader(ctx)
	if err != nil {
		return nil, err
	}
	c.pc.startMessage()
	if typ != websocket.MessageBinary {
		return nil, wsio.ErrText
	}
	return c.frame.read(r)
}

// setReadLimit bounds the frames c reads to n bytes.
func (c *conn) setReadLimit(n int) {
	c.ws.SetReadLimit(int64(n))
	c.frame.limit = n
}

func isTooBig(err error) bool {
	return err != nil && websocket.CloseStatus(err) == websocket.StatusMessageTooBig ||
		err != nil && containsAny(err.Error(), "read limited at", "message too big")
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		for i := 0; i+len(sub) <= len(s); i++ {
			if s[i:i+len(sub)] == sub {
				return true
			}
		}
	}
	return false
}

// handshake runs Hello → Challenge → Auth → Capabilities.
func (s *Server) handshake(ctx context.Context, c *conn) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	var dec protocol.Decoder
	var hello *protocol.Hello
	var auth *protocol.Auth
	var caps *protocol.Capabilities
	var challenge string
	for caps == nil {
		frame, err := c.readFrame(ctx)
		if err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		if v, ok := protocol.FrameVersion(frame); ok && v != protocol.Version {
			return versionError(v)
		}
		err = dec.Decode(frame, func(m protocol.Message) error {
			switch m := m.(type) {
			case *protocol.Hello:
				if hello != nil {
					return fmt.Errorf("protocol: second Hello")
				}
				if m.Version != protocol.Version {
					return versionError(m.Version)
				}
				hello = protocol.Clone(m)
				challenge, _ = s.auth.Issue(hello.Address)
				return c.ws.Write(ctx, websocket.MessageBinary, mustEncode(&protocol.Challenge{Message: challenge}))
			case *protocol.Auth:
				if hello == nil || auth != nil {
					return fmt.Errorf("protocol: Auth out of order")
				}
				auth = protocol.Clone(m)
				if err := s.auth.Check(challenge, auth.Signature, hello.Address, s.cfg.Now()); err != nil {
					return fmt.Errorf("authentication failed: %w", err)
				}
				c.addr = hello.Address
			case *protocol.Capabilities:
				if auth == nil {
					return fmt.Errorf("protocol: Capabilities before Auth")
				}
				caps = protocol.Clone(m)
			case *protocol.Heartbeat:
			default:
				return fmt.Errorf("protocol: %T during handshake", m)
			}
			return nil
		})
		c.frame.release()
		if err != nil {
			return err
		}
	}
	switch caps.Backend {
	case scheduler.BackendCPU, scheduler.BackendNativeGPU, scheduler.BackendWebGPU, scheduler.BackendCPUWasm:
	default:
		return fmt.Errorf("protocol: unknown backend %q", caps.Backend)
	}
	c.caps = *caps
	c.joined = s.cfg.Now()
	return nil
}

// versionError refuses a worker of protocol version v; it closes with
// statusVersion and this reason (short enough for a close frame).
func versionError(v uint8) error {
	return fmt.Errorf("%w: worker speaks version %d, coordinator %d: reload the page or update the worker", protocol.ErrVersion, v, protocol.Version)
}

func mustEncode(m protocol.Message) []byte {
	b, err := protocol.Encode(m)
	if err != nil {
		panic(err) // only our own well-formed messages reach here
	}
	return b
}

// readLoop decodes frames until the connection ends, sending each frame's
// events to the loop as one batch.
func (c *conn) readLoop() error {
	s := c.srv
	var dec protocol.Decoder
	asm := protocol.NewAssembler(chunkedOutputBytes)
	done := make(map[[32]byte]*tensor.Tensor) // chunked outputs awaiting their Result
	var held int64                            // their bytes, as counted by heldBytes
	outputs := &s.budgets.outputs             // charged asm.Used() + held
	defer func() { outputs.give(asm.Used() + held) }()
	for {
		frame, err := c.readFrame(c.ctx)
		if err != nil {
			return err
		}
		var batch []event
		var results []scheduler.LeaseResult // consecutive Results, sent as one event
		flush := func() {
			if len(results) > 0 {
				batch = append(batch, event{kind: evResults, conn: c, results: results})
				results = nil
			}
		}
		messages := 0
		err = dec.Decode(frame, func(m protocol.Message) error {
			messages++
			if _, ok := m.(*protocol.Result); !ok {
				flush()
			}
			switch m := m.(type) {
			case *protocol.Result:
				outs, freed, err := c.outputs(done, m.Outputs)
				if err != nil {
					return err
				}
				held -= freed
				outputs.give(freed)
				if results == nil {
					results = make([]scheduler.LeaseResult, 0, dec.Remaining()+1)
				}
				results = append(results, scheduler.LeaseResult{Lease: scheduler.LeaseID(m.Lease), Outputs: outs})
			case *protocol.Error:
				batch = append(batch, event{kind: evError, conn: c, lease: m.Lease, msg: m.Message})
			case *protocol.Fetch:
				batch = append(batch, event{kind: evFetch, conn: c, hashes: append([][32]byte(nil), m.Hashes...)})
			case *protocol.TensorData:
				before := asm.Used()
				t, err := asm.Add(m)
				if d := asm.Used() - before; d < 0 {
					outputs.give(-d)
				} else if berr := outputs.take(d); berr != nil {
					asm.Drop(m.Hash)
					return berr
				}
				if err != nil {
					return err
				}
				if t != nil && done[m.Hash] == nil {
					// held counts only what the budget was charged: the
					// deferred give returns exactly that.
					if held+heldBytes(t) > s.cfg.MaxHeldOutputBytes {
						return fmt.Errorf("%w: more than %d bytes of chunked outputs sent without a Result", protocol.ErrLimit, s.cfg.MaxHeldOutputBytes)
					}
					if berr := outputs.take(heldBytes(t)); berr != nil {
						return berr
					}
					held += heldBytes(t)
					done[m.Hash] = t
				}
			case *protocol.Heartbeat:
				c.out.Enqueue(&protocol.Heartbeat{Seq: m.Seq, UnixMilli: s.cfg.Now().UnixMilli()})
			case *protocol.Goodbye:
				return io.EOF
			default:
				return fmt.Errorf("%w: %T from a worker", protocol.ErrUnknownType, m)
			}
			return nil
		})
		flush()
		c.frame.release()
		s.metrics.traffic.framesIn.Add(1)
		s.metrics.traffic.messagesIn.Add(uint64(messages))
		if len(batch) == 1 {
			if serr := s.send(batch[0]); serr != nil {
				return serr
			}
		} else if len(batch) > 1 {
			if serr := s.send(event{kind: evBatch, batch: batch}); serr != nil {
				return serr
			}
		}
		if err != nil {
			return err
		}
	}
}

// heldBytes is what a chunked output awaiting its Result counts against
// maxHeldOutputBytes.
func heldBytes(t *tensor.Tensor) int64 { return 4*int64(t.Len()) + heldOverhead }

// outputs copies a Result's tensors out of the frame and takes its chunked
// ones out of done, returning the bytes that frees. It resolves every
// reference before deleting any, so that a Result may name one tensor
// twice (identical outputs).
func (c *conn) outputs(done map[[32]byte]*tensor.Tensor, refs []protocol.TensorRef) ([]*tensor.Tensor, int64, error) {
	outs := make([]*tensor.Tensor, len(refs))
	byHash := false
	for i := range refs {
		r := &refs[i]
		if r.Inline {
			outs[i] = &tensor.Tensor{Shape: append([]int(nil), r.Shape...), Data: append([]float32(nil), r.Data...)}
			continue
		}
		t := done[r.Hash]
		if t == nil {
			return nil, 0, fmt.Errorf("%w: result names tensor %x that was never sent", protocol.ErrMalformed, r.Hash[:8])
		}
		outs[i] = t
		byHash = true
	}
	var freed int64
	if byHash {
		for i := range refs {
			if t := done[refs[i].Hash]; !refs[i].Inline && t != nil {
				freed += heldBytes(t)
				delete(done, refs[i].Hash)
			}
		}
	}
	return outs, freed, nil
}

// startPinging arms the timer that pings the worker every PingEvery.
func (c *conn) startPinging() {
	c.pingMu.Lock()
	defer c.pingMu.Unlock()
	c.pinger = time.AfterFunc(c.srv.cfg.PingEvery, c.ping)
}

// stopPinging stops the ping timer for good once the connection has ended:
// the timer holds the connection, so a dead one is not kept until it fires.
func (c *conn) stopPinging() {
	c.pingMu.Lock()
	defer c.pingMu.Unlock()
	c.pingStopped = true
	c.pinger.Stop()
}

// ping pings the worker, and again PingEvery after each answer, from a
// timer (no goroutine waits between pings); a worker that does not answer
// within PingTimeout (a laptop lid closed, a network gone without a FIN)
// is dropped so its leases are re-issued at once rather than at expiry.
func (c *conn) ping() {
	if c.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.PingTimeout)
	err := c.ws.Ping(ctx)
	cancel()
	if err != nil {
		if c.ctx.Err() == nil {
			// An unresponsive peer would not answer a close handshake
			// either: drop the connection at once.
			c.srv.log.Info("worker stopped answering pings", "address", c.addr, "err", err)
			c.out.Close()
			_ = c.ws.CloseNow()
		}
		return
	}
	c.pingMu.Lock()
	defer c.pingMu.Unlock()
	if !c.pingStopped {
		c.pinger.Reset(c.srv.cfg.PingEvery)
	}
}

// startWriter makes c's outbox write on demand: a writer goroutine runs
// only while messages wait.
func (c *conn) startWriter() {
	t := &c.srv.metrics.traffic
	c.out.OnFrame = func(messages int) {
		t.framesOut.Add(1)
		t.messagesOut.Add(uint64(messages))
	}
	c.out.OnDemand(c.ctx, c.ws, func(m protocol.Message, err error) {
		c.srv.log.Error("message does not fit a frame", "type", fmt.Sprintf("%T", m), "err", err)
		if a, ok := m.(*protocol.Assign); ok {
			// Fail the lease as the worker's error would, so the scheduler
			// counts an attempt (and fails the job after MaxAttempts)
			// rather than waiting for a lease that was never sent.
			_ = c.srv.send(event{kind: evError, conn: c, lease: a.Lease, msg: "assign does not fit a frame: " + err.Error()})
		}
	}, func(err error) {
		if c.ctx.Err() == nil {
			c.srv.log.Info("writing to worker", "address", c.addr, "err", err)
		}
		c.cancel()
	})
}
