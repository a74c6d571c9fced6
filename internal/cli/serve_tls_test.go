package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/internal/servertest"
	"github.com/neurolov/neurolov/tensor"
	"github.com/neurolov/neurolov/worker"
)

// selfSigned writes a fresh self-signed certificate for 127.0.0.1 and
// localhost, and its key, as PEM files in dir; it returns their paths and
// a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "neurolov test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// lockedBuffer is an io.Writer the test reads while serve writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// servedAt matches serve's start-up line.
var servedAt = regexp.MustCompile(`coordinator on (https?)://(\S+) `)

// startServe runs `neurolov serve` with args until the test ends and
// returns the scheme and address it serves on (from its start-up line)
// and its standard error so far.
func startServe(t *testing.T, args ...string) (scheme, addr string, stderr *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout lockedBuffer
	stderr = &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, append([]string{"serve", "-log", "warn"}, args...), &stdout, stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	var m []string
	servertest.WaitFor(t, "serve's start-up line", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("serve %v ended: %v\n%s", args, err, stderr.String())
		default:
		}
		m = servedAt.FindStringSubmatch(stdout.String())
		return m != nil
	})
	return m[1], m[2], stderr
}

// TestServeOverTLS: serve -tls-cert -tls-key serves the API over HTTPS and
// the worker endpoint over wss, with a certificate made here.
func TestServeOverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	scheme, addr, stderr := startServe(t, "-addr", "127.0.0.1:0", "-data-dir", dir, "-tls-cert", certFile, "-tls-key", keyFile)
	if scheme != "https" {
		t.Fatalf("serve with a certificate serves %s, want https", scheme)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	key, err := os.ReadFile(filepath.Join(dir, "api-key"))
	if err != nil {
		t.Fatal(err)
	}
	cl := client.New("https://"+addr, client.WithAPIKey(strings.TrimSpace(string(key))), client.WithHTTPClient(hc))
	ctx := context.Background()
	if _, err := cl.Workers(ctx); err != nil {
		t.Fatalf("GET /v1/workers over TLS: %v", err)
	}
	if _, err := cl.Jobs(ctx); err != nil {
		t.Fatalf("GET /v1/jobs over TLS with the key: %v", err)
	}
	// The worker endpoint answers a WebSocket over TLS.
	ws, _, err := websocket.Dial(ctx, "wss://"+addr+"/v1/worker", &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatalf("dialling wss://%s/v1/worker: %v", addr, err)
	}
	_ = ws.CloseNow()
	// Two native workers over wss, trusting the certificate as
	// `neurolov worker -ca-file` does, compute a job.
	dial, err := dialTrusting(certFile)
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWorkers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopWorkers(); wg.Wait() }()
	for range 2 {
		key, err := identity.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		w := worker.New(worker.Config{URL: "wss://" + addr + "/v1/worker", DialOptions: dial, Signer: identity.NewKeySigner(key),
			Backend: worker.CPU{}, GFLOPS: 1, Logger: servertest.Logger(t)})
		wg.Go(func() { _ = w.Run(wctx) })
	}
	a, b := tensor.New(16, 8), tensor.New(8, 16)
	for i := range a.Data {
		a.Data[i], b.Data[i] = float32(i%7), float32(i%5)
	}
	job, err := cl.SubmitMatmul(ctx, a, b, client.SubmitOptions{Replication: 2})
	if err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if st, err := cl.Wait(wait, job.ID, 10*time.Millisecond, nil); err != nil || st.Status != client.StateDone {
		t.Fatalf("job over TLS: %+v, %v", st, err)
	}
	if res, err := cl.Result(ctx, job.ID); err != nil || res["C"] == nil || !res["C"].Is2D(16, 16) {
		t.Fatalf("result over TLS: %v, %v", res, err)
	}
	// Plain HTTP to the TLS port is refused, and a client that does not
	// trust the certificate fails.
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP to the TLS port answered 200")
		}
	}
	var unknown *tls.CertificateVerificationError
	if _, err := client.New("https://" + addr).Workers(ctx); !errors.As(err, &unknown) {
		t.Errorf("a client without the certificate: %v, want a certificate verification error", err)
	}
	if strings.Contains(stderr.String(), "plain HTTP") {
		t.Errorf("serve over TLS warned of plain HTTP:\n%s", stderr.String())
	}
}

// TestServeWarnsOfPlainHTTPOffLoopback: plain HTTP on an address other
// machines reach gets a warning that browsers will refuse WebGPU there,
// and how to fix it; on loopback it does not.
func TestServeWarnsOfPlainHTTPOffLoopback(t *testing.T) {
	_, _, stderr := startServe(t, "-addr", "0.0.0.0:0", "-data-dir", t.TempDir())
	for _, want := range []string{"plain HTTP", "WebGPU", "-tls-cert"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("serve on 0.0.0.0 over plain HTTP: stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	_, _, stderr = startServe(t, "-addr", "127.0.0.1:0", "-data-dir", t.TempDir())
	if strings.Contains(stderr.String(), "plain HTTP") {
		t.Errorf("serve on loopback warned of plain HTTP:\n%s", stderr.String())
	}
}

// TestServeTLSFlags: a certificate without its key, or the reverse, or
// files that do not load, are refused before serving.
func TestServeTLSFlags(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir)
	for _, tc := range []struct {
		args []string
		say  string
	}{
		{[]string{"-tls-cert", certFile}, "-tls-key"},
		{[]string{"-tls-key", keyFile}, "-tls-cert"},
		{[]string{"-tls-cert", keyFile, "-tls-key", certFile}, "TLS"},
		{[]string{"-tls-cert", filepath.Join(dir, "none.pem"), "-tls-key", keyFile}, "none.pem"},
	} {
		var out, errOut lockedBuffer
		err := Run(context.Background(), append([]string{"serve", "-addr", "127.0.0.1:0", "-data-dir", dir}, tc.args...), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.say) {
			t.Errorf("serve %v: %v, want an error saying %q", tc.args, err, tc.say)
		}
	}
}
