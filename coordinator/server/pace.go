package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// maxHeaderBytes bounds a request's header (net/http's default is 1 MiB).
const maxHeaderBytes = 64 << 10

// HTTPServer returns an http.Server serving Handler with the coordinator's
// deadlines: a request's header must arrive within RateGrace, a keep-alive
// connection may idle for IdleTimeout, and Handler paces every request
// through http.ResponseController (see paceRequests) rather than with
// ReadTimeout and WriteTimeout, which would cut long streams.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.RateGrace,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// paceRequests gives each request deadlines that move with its progress: its
// body must arrive at MinRate after RateGrace (so a 1 GiB upload at a fair
// rate succeeds, a body that stalls ends with a 408), and each write of the
// response must go within RateGrace plus its size over MinRate (so a result
// download streams as long as the client reads it). The worker WebSocket is
// hijacked, which clears these; its peerConn paces it instead.
func (s *Server) paceRequests(h http.Handler) http.Handler {
	grace, rate := s.cfg.RateGrace, s.cfg.MinRate
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &pacedBody{ReadCloser: r.Body, rc: rc, start: time.Now(), grace: grace, rate: rate}
		}
		h.ServeHTTP(&pacedWriter{ResponseWriter: w, rc: rc, grace: grace, rate: rate}, r)
		// What net/http writes after the handler (the buffered rest) gets
		// a deadline of its own, not one left from an earlier write.
		_ = rc.SetWriteDeadline(time.Now().Add(grace))
	})
}

// pacedBody is a request body read at MinRate or cut: before each Read the
// read deadline moves to start + grace + (bytes read)/rate.
type pacedBody struct {
	io.ReadCloser
	rc          *http.ResponseController
	start       time.Time
	grace       time.Duration
	rate, read  int64
	unsupported bool // the connection takes no deadlines (HTTP/2 without them, a test recorder)
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if !b.unsupported {
		if err := b.rc.SetReadDeadline(b.start.Add(b.grace + rateTime(b.read, b.rate))); errors.Is(err, http.ErrNotSupported) {
			b.unsupported = true
		}
	}
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = &paceError{errSlow, fmt.Sprintf("request body: %d bytes in %v, slower than %d B/s after a %v grace",
			b.read, time.Since(b.start).Round(time.Millisecond), b.rate, b.grace)}
	}
	return n, err
}

// pacedWriter moves the write deadline before each write of the response
// to now + grace + len/rate.
type pacedWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	grace time.Duration
	rate  int64
}

func (w *pacedWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.grace + rateTime(int64(len(p)), w.rate)))
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController (and websocket.Accept) reach the
// connection's own writer: its Flush, Hijack and deadlines.
func (w *pacedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
