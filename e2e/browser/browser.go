package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/chromedp/chromedp"
)

// ErrNoChromium reports that no chromium binary was found.
var ErrNoChromium = errors.New("browser: install chromium: apt-get install chromium (or make deps)")

// EnvPath names the variable that overrides the chromium binary's path.
const EnvPath = "NEUROLOV_CHROMIUM"

// Find returns the path of the chromium binary: $NEUROLOV_CHROMIUM, or
// chromium (Debian's) or chromium-browser on the PATH.
func Find() (string, error) {
	if p := os.Getenv(EnvPath); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w (%s=%s: %w)", ErrNoChromium, EnvPath, p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNoChromium
}

// Options configures Launch.
type Options struct {
	// WebGPU passes --enable-unsafe-webgpu.
	WebGPU bool
	// Width and Height size the window (default 1280×900).
	Width, Height int
}

// Browser is a running headless Chromium. Each NewTab is a tab of it.
type Browser struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// Launch starts chromium; Close stops it. The browser lives until Close or
// until ctx ends.
func Launch(ctx context.Context, opts Options) (*Browser, error) {
	path, err := Find()
	if err != nil {
		return nil, err
	}
	if opts.Width <= 0 {
		opts.Width = 1280
	}
	if opts.Height <= 0 {
		opts.Height = 900
	}
	flags := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.WindowSize(opts.Width, opts.Height),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		// The volunteer page reads tab visibility; every tab of a headless
		// test browser must count as visible.
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
	)
	if os.Geteuid() == 0 {
		flags = append(flags, chromedp.NoSandbox)
	}
	if opts.WebGPU {
		flags = append(flags, chromedp.Flag("enable-unsafe-webgpu", true))
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, flags...)
	bctx, bcancel := chromedp.NewContext(actx)
	// The first Do starts the browser (and its first tab, left blank).
	if err := chromedp.Do(bctx); err != nil {
		bcancel()
		acancel()
		return nil, fmt.Errorf("browser: starting %s: %w", path, err)
	}
	return &Browser{ctx: bctx, cancel: func() { bcancel(); acancel() }}, nil
}

// NewTab opens a tab; cancel closes it (as a person closing it would: its
// page and workers end). Tabs of one browser share its storage, so the
// volunteer page's key in IndexedDB, and so one address.
func (b *Browser) NewTab() (context.Context, context.CancelFunc) {
	return chromedp.NewContext(b.ctx)
}

// NewIsolatedTab opens a tab in a fresh browser context (like a private
// window): its storage, and so its volunteer identity, is its own.
func (b *Browser) NewIsolatedTab() (context.Context, context.CancelFunc) {
	return chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
}

// Close stops the browser and removes its profile.
func (b *Browser) Close() { b.cancel() }
