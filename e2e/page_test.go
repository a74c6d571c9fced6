package e2e_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/neurolov/neurolov/e2e/browser"
	"github.com/neurolov/neurolov/identity"
)

// artifacts is where screenshots are kept (gitignored).
const artifacts = "artifacts"

// TestPageKeyboardAt360 drives the page at a phone's width with the
// keyboard alone: Tab to the button, Enter starts, Space pauses, Enter
// resumes, Tab to the share slider and move it with the arrow keys. The
// page never scrolls sideways, and the focused control shows a focus ring.
func TestPageKeyboardAt360(t *testing.T) {
	requirements(t)
	c := startCluster(t, nil)
	b := launch(t, browser.Options{})
	tb := openTab(t, b, "keyboard", c.http.URL+"/?backend=cpu", chromedp.EmulateViewport(360, 740))

	scroll := func(when string) {
		w, err := chromedp.Run(tb.ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		if err != nil {
			t.Fatal(err)
		}
		if w > 360 {
			t.Errorf("%s: scrollWidth %d > 360: the page scrolls sideways", when, w)
		}
	}
	scroll("idle")

	tb.tabTo(t, "toggle")
	ring, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`getComputedStyle(document.activeElement).outlineStyle`))
	if err != nil || ring == "none" || ring == "" {
		t.Errorf("the focused button shows no focus ring (outline-style %q, %v)", ring, err)
	}

	tb.key(t, kb.Enter)
	s := tb.waitState(t, "start with Enter", 60*time.Second, working)
	if s.Action != "pause" || s.Backend != "cpu-wasm" {
		t.Errorf("after start: button %q, backend shown %q; want pause, cpu-wasm", s.Action, s.Backend)
	}
	scroll("working")

	if got := tb.focused(t); got != "toggle" {
		t.Fatalf("focus moved to %q after start", got)
	}
	tb.key(t, " ")
	tb.waitState(t, "pause with Space", 20*time.Second, func(s pageState) bool {
		return s.Action == "resume" && s.Shown == "paused" && s.Status.State == "paused"
	})

	tb.key(t, kb.Enter)
	tb.waitState(t, "resume with Enter", 20*time.Second, func(s pageState) bool {
		return s.Action == "pause" && len(s.Pauses) == 0 && working(s)
	})

	tb.tabTo(t, "share")
	for range 2 {
		tb.key(t, kb.ArrowRight)
	}
	for range 4 {
		tb.key(t, kb.ArrowLeft)
	}
	got, err := chromedp.Run(tb.ctx, chromedp.Evaluate[[]string](`[document.getElementById("share").value, document.getElementById("share-value").textContent]`))
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "40" || got[1] != "40%" {
		t.Errorf("share after →→←←←← from 50: value %q, shown %q; want 40, 40%%", got[0], got[1])
	}
	// The worker still works at 40%.
	tb.waitState(t, "working at 40%", 10*time.Second, working)
	scroll("after the slider")
}

// TestPageLooks renders the started page at 360 and 1280 px: axe-core
// finds no serious or critical violation, and the screenshots (kept in
// e2e/artifacts) hold many colours and visible text.
func TestPageLooks(t *testing.T) {
	requirements(t)
	axe := axeSource(t)
	c := startCluster(t, nil)
	b := launch(t, browser.Options{})
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, width := range []int64{360, 1280} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			tb := openTab(t, b, fmt.Sprintf("looks-%d", width), c.http.URL+"/?backend=cpu", chromedp.EmulateViewport(width, 900))
			tb.click(t)
			tb.waitState(t, "working", 60*time.Second, working)

			if err := chromedp.Do(tb.ctx, chromedp.Evaluate[chromedp.Void](axe)); err != nil {
				t.Fatalf("injecting axe-core: %v", err)
			}
			raw, err := chromedp.Run(tb.ctx, chromedp.Evaluate[[]byte](
				`axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))})))`,
				chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatalf("running axe-core: %v", err)
			}
			var violations []struct {
				ID, Impact, Help string
				Nodes            []string
			}
			if err := json.Unmarshal(raw, &violations); err != nil {
				t.Fatal(err)
			}
			for _, v := range violations {
				msg := fmt.Sprintf("axe %s (%s): %s at %v", v.ID, v.Impact, v.Help, v.Nodes)
				if v.Impact == "serious" || v.Impact == "critical" {
					t.Error(msg)
				} else {
					t.Log(msg)
				}
			}

			shot, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(artifacts, fmt.Sprintf("volunteer-%d.png", width))
			if err := os.WriteFile(path, shot, 0o644); err != nil {
				t.Fatal(err)
			}
			box, err := chromedp.Run(tb.ctx, chromedp.Evaluate[[4]float64](
				`(() => { const r = document.querySelector(".about").getBoundingClientRect(); return [r.left + scrollX, r.top + scrollY, r.right + scrollX, r.bottom + scrollY]; })()`))
			if err != nil {
				t.Fatal(err)
			}
			checkScreenshot(t, path, shot, int(width), image.Rect(int(box[0]), int(box[1]), int(box[2]), int(box[3])))

			text, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.body.innerText`))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"Lend this computer to AI jobs", "What runs, and how to stop it", "Pause"} {
				if !strings.Contains(text, want) {
					t.Errorf("the page does not show %q", want)
				}
			}
		})
	}
}

// checkScreenshot: the image is as wide as the viewport, holds at least 16
// colours, no colour covers 90% of it, and the text block at textBox (the
// "what runs" list: dark text on a light card) shows both ink and paper.
func checkScreenshot(t *testing.T, path string, shot []byte, width int, textBox image.Rectangle) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	r := img.Bounds()
	if r.Dx() != width || r.Dy() < 400 {
		t.Errorf("%s is %dx%d, want %d wide and a page tall", path, r.Dx(), r.Dy(), width)
	}
	colours, top, _, _ := histogram(img, r)
	total := r.Dx() * r.Dy()
	t.Logf("%s: %dx%d, %d colours, the commonest covers %.0f%%", path, r.Dx(), r.Dy(), colours, 100*float64(top)/float64(total))
	if colours < 16 {
		t.Errorf("%s holds %d colours, want at least 16", path, colours)
	}
	if top*10 >= total*9 {
		t.Errorf("%s is almost one colour (%d of %d pixels)", path, top, total)
	}
	textBox = textBox.Intersect(r)
	_, _, ink, paper := histogram(img, textBox)
	area := max(textBox.Dx()*textBox.Dy(), 1)
	t.Logf("%s: text block %v: %.1f%% ink, %.0f%% paper", path, textBox, 100*float64(ink)/float64(area), 100*float64(paper)/float64(area))
	if ink*100 < area || paper*2 < area {
		t.Errorf("%s: the text block %v shows no readable text (%d ink and %d paper pixels of %d)", path, textBox, ink, paper, area)
	}
}

// histogram counts the pixels of img within r: distinct colours, the
// commonest colour's count, dark pixels (ink) and light ones (paper).
func histogram(img image.Image, r image.Rectangle) (colours, top, ink, paper int) {
	counts := map[[3]uint8]int{}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			k := [3]uint8{uint8(cr >> 8), uint8(cg >> 8), uint8(cb >> 8)}
			counts[k]++
			switch luma := (299*int(k[0]) + 587*int(k[1]) + 114*int(k[2])) / 1000; {
			case luma < 100:
				ink++
			case luma > 200:
				paper++
			}
		}
	}
	for _, n := range counts {
		top = max(top, n)
	}
	return len(counts), top, ink, paper
}

// fakeDevice stands in for the Battery Status API (15%, not charging) and
// for tab visibility, with window.__battery(level, charging) and
// window.__hidden(bool) to change them.
const fakeDevice = `(() => {
	const on = {};
	const battery = {level: 0.15, charging: false, addEventListener(type, f) { (on[type] = on[type] || []).push(f); }};
	Object.defineProperty(navigator, "getBattery", {configurable: true, value: () => Promise.resolve(battery)});
	window.__battery = (level, charging) => {
		battery.level = level; battery.charging = charging;
		for (const f of [...(on.levelchange || []), ...(on.chargingchange || [])]) f();
	};
	let hidden = false;
	Object.defineProperty(document, "visibilityState", {configurable: true, get: () => hidden ? "hidden" : "visible"});
	Object.defineProperty(document, "hidden", {configurable: true, get: () => hidden});
	window.__hidden = (h) => { hidden = h; document.dispatchEvent(new Event("visibilitychange")); };
})()`

// TestPagePausesOnBatteryAndWhenHidden: the page reads the battery and the
// tab's visibility and pauses the worker for them, and the settings turn
// that off.
func TestPagePausesOnBatteryAndWhenHidden(t *testing.T) {
	requirements(t)
	c := startCluster(t, nil)
	b := launch(t, browser.Options{})
	tb := openTab(t, b, "battery", c.http.URL+"/?backend=cpu", onNewDocument(fakeDevice))
	pausedFor := func(reason string) func(pageState) bool {
		return func(s pageState) bool {
			return slices.Equal(s.Pauses, []string{reason}) && s.Shown == "paused" && s.Status.State == "paused" && s.Action == "pause"
		}
	}
	running := func(s pageState) bool { return len(s.Pauses) == 0 && working(s) }

	tb.click(t)
	s := tb.waitState(t, "paused on battery at 15%", 60*time.Second, pausedFor("battery"))
	if !strings.Contains(s.Text, "battery") {
		t.Errorf("the page says %q, not why it paused", s.Text)
	}
	tb.eval(t, `__battery(0.15, true)`)
	tb.waitState(t, "resumed when charging", 20*time.Second, running)
	tb.eval(t, `__battery(0.10, false)`)
	tb.waitState(t, "paused on battery at 10%", 20*time.Second, pausedFor("battery"))
	if err := chromedp.Do(tb.ctx, chromedp.Click(chromedp.ID("pause-battery"))); err != nil {
		t.Fatal(err)
	}
	tb.waitState(t, "running with the battery setting off", 20*time.Second, running)

	tb.eval(t, `__hidden(true)`)
	tb.waitState(t, "paused while hidden", 20*time.Second, pausedFor("hidden"))
	if err := chromedp.Do(tb.ctx, chromedp.Click(chromedp.ID("pause-hidden"))); err != nil {
		t.Fatal(err)
	}
	tb.waitState(t, "running hidden with the setting off", 20*time.Second, running)
	if err := chromedp.Do(tb.ctx, chromedp.Click(chromedp.ID("pause-hidden"))); err != nil {
		t.Fatal(err)
	}
	tb.waitState(t, "paused again while hidden", 20*time.Second, pausedFor("hidden"))
	tb.eval(t, `__hidden(false)`)
	tb.waitState(t, "resumed when visible", 20*time.Second, running)
}

// fakeWallet is an EIP-1193 provider whose keys live in the test:
// eth_requestAccounts and personal_sign call the Go funcs the test exposes.
const fakeWallet = `window.ethereum = {
	request: async ({method, params}) => {
		switch (method) {
		case "eth_requestAccounts": return [await __walletAddress("")];
		case "personal_sign": return await __walletSign(params[0]);
		}
		throw new Error("unsupported method " + method);
	},
};`

// TestPageWalletIdentity: with a wallet on the page, the volunteer chooses
// it, the worker asks the page to sign the coordinator's challenge, and the
// coordinator lists the worker under the wallet's address.
func TestPageWalletIdentity(t *testing.T) {
	requirements(t)
	c := startCluster(t, nil)
	b := launch(t, browser.Options{})
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	wallet := identity.NewKeySigner(key)
	address := identity.FormatAddress(wallet.Address())
	signed := make(chan string, 8)
	tb := openTab(t, b, "wallet", c.http.URL+"/?backend=cpu",
		chromedp.ExposeFunc("__walletAddress", func(context.Context, string) (string, error) { return address, nil }),
		chromedp.ExposeFunc("__walletSign", func(_ context.Context, hexMsg string) (string, error) {
			msg, err := hex.DecodeString(strings.TrimPrefix(hexMsg, "0x"))
			if err != nil {
				return "", err
			}
			sig, err := wallet.SignText(string(msg))
			if err != nil {
				return "", err
			}
			select {
			case signed <- string(msg):
			default:
			}
			return "0x" + hex.EncodeToString(sig[:]), nil
		}),
		onNewDocument(fakeWallet))

	if err := chromedp.Do(tb.ctx, chromedp.Click(chromedp.ID("wallet"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the page to take the wallet", 10*time.Second, func() (bool, string) {
		text, err := chromedp.Run(tb.ctx, chromedp.Text(chromedp.ID("identity")))
		return err == nil && strings.Contains(text, address), text
	})
	tb.click(t)
	s := tb.waitState(t, "working under the wallet", 60*time.Second, working)
	if !strings.EqualFold(s.Status.Address, address) {
		t.Errorf("worker address %s, want the wallet's %s", s.Status.Address, address)
	}
	select {
	case msg := <-signed:
		if !strings.Contains(msg, address) {
			t.Errorf("the wallet signed %q, which does not name %s", msg, address)
		}
	default:
		t.Error("the wallet was never asked to sign")
	}
	waitFor(t, "the coordinator to list the wallet", 10*time.Second, func() (bool, string) {
		for _, w := range c.workers(t) {
			if strings.EqualFold(w.Address, address) {
				return true, ""
			}
		}
		return false, ""
	})
}

// TestClientServedCompressed: the browser fetches the client's files under
// content-hashed URLs, compressed, with a one-year immutable cache policy
// and the types WebAssembly.instantiateStreaming and importScripts need.
func TestClientServedCompressed(t *testing.T) {
	requirements(t)
	c := startCluster(t, nil)
	b := launch(t, browser.Options{})
	tb := openTab(t, b, "assets", c.http.URL+"/")
	type response struct {
		URL, Type, Cache, Encoding string
		Status                     int
	}
	got, err := chromedp.Run(tb.ctx, chromedp.Evaluate[[]response](`(async () => {
		const cfg = JSON.parse(document.getElementById("neurolov-config").textContent);
		const out = [];
		for (const url of [cfg.client, cfg.kernel, cfg.wasmExec]) {
			const r = await fetch(url);
			await r.arrayBuffer();
			out.push({URL: url, Status: r.status, Type: r.headers.get("content-type"),
				Cache: r.headers.get("cache-control"), Encoding: r.headers.get("content-encoding") || ""});
		}
		return out;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	wantType := map[string]string{".wasm": "application/wasm", ".js": "text/javascript; charset=utf-8"}
	for _, r := range got {
		t.Logf("%s: %d %s, %s, encoding %q", r.URL, r.Status, r.Type, r.Cache, r.Encoding)
		if !regexp.MustCompile(`^/static/dist/[0-9a-f]{16}/[a-z_]+\.(wasm|js)$`).MatchString(r.URL) {
			t.Errorf("%s is not a content-hashed URL", r.URL)
		}
		if r.Status != 200 || r.Type != wantType[filepath.Ext(r.URL)] || r.Cache != "public, max-age=31536000, immutable" {
			t.Errorf("%s: %d, %q, %q", r.URL, r.Status, r.Type, r.Cache)
		}
		if r.Encoding != "gzip" && r.Encoding != "br" {
			t.Errorf("%s was sent uncompressed", r.URL)
		}
	}
}

// TestPageForcedWebGPUWithoutAdapter: forcing WebGPU in a browser that has
// no adapter stops with a message that says so, and Start is offered again.
func TestPageForcedWebGPUWithoutAdapter(t *testing.T) {
	requirements(t)
	c := startCluster(t, nil)
	b := launch(t, browser.Options{})
	tb := openTab(t, b, "forced-webgpu", c.http.URL+"/?backend=webgpu")
	tb.click(t)
	var s pageState
	waitFor(t, "the page to report the failure", 60*time.Second, func() (bool, string) {
		s = tb.state(t)
		return s.Failure != "", s.Text
	})
	t.Logf("the page says: %s", s.Text)
	if s.Shown != "error" || s.Action != "start" || !strings.Contains(s.Text, "WebGPU") {
		t.Errorf("shown %q %q, button %q; want an error naming WebGPU and Start again", s.Shown, s.Text, s.Action)
	}
	if n := len(c.workers(t)); n != 0 {
		t.Errorf("%d workers connected", n)
	}
}
