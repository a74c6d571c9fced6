//go:build js

package browser

import (
	"context"
	"log/slog"
	"os"
	"syscall/js"
)

// Main registers globalThis.neurolov, calls globalThis.neurolovReady when
// worker.js defined it, and never returns (the Go program must outlive
// its callbacks). Every callback returns at once: work that blocks on
// promises runs in goroutines, and the page's commands are applied in
// order by one goroutine.
func Main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c := NewClient(JSPlatform(log))
	queue := make(chan func(), 256)
	go func() {
		for f := range queue {
			f()
		}
	}()
	enqueue := func(f func()) {
		select {
		case queue <- f:
		default:
			go f() // a burst beyond the queue: still never block the callback
		}
	}
	arg := func(args []js.Value, i int) js.Value {
		if i < len(args) {
			return args[i]
		}
		return js.Undefined()
	}
	api := map[string]any{
		"start": js.FuncOf(func(_ js.Value, args []js.Value) any {
			o := startOptions(arg(args, 0))
			go func() { _ = c.Start(context.Background(), o) }()
			return nil
		}),
		"stop": js.FuncOf(func(js.Value, []js.Value) any {
			go c.Stop()
			return nil
		}),
		"pause": js.FuncOf(func(js.Value, []js.Value) any {
			enqueue(c.Pause)
			return nil
		}),
		"resume": js.FuncOf(func(js.Value, []js.Value) any {
			enqueue(c.Resume)
			return nil
		}),
		"setShare": js.FuncOf(func(_ js.Value, args []js.Value) any {
			v := number(arg(args, 0), 1)
			enqueue(func() { c.SetShare(v) })
			return nil
		}),
		"provideSignature": js.FuncOf(func(_ js.Value, args []js.Value) any {
			id, sig, msg := int(number(arg(args, 0), 0)), text(arg(args, 1)), text(arg(args, 2))
			enqueue(func() {
				if err := c.ProvideSignature(id, sig, msg); err != nil {
					log.Warn("signature", "err", err)
				}
			})
			return nil
		}),
		"status": js.FuncOf(func(js.Value, []js.Value) any {
			return js.ValueOf(c.Status().Map())
		}),
		"bench": js.FuncOf(func(_ js.Value, args []js.Value) any {
			o := arg(args, 0)
			opts := BenchOptions{Kernel: field(o, "kernel"), Backend: field(o, "backend"),
				Runs: int(number(get(o, "runs"), 5)), Batch: int(number(get(o, "batch"), 0)),
				Threads: int(number(get(o, "threads"), 0))}
			return promise(func() (any, error) {
				r, err := c.Bench(context.Background(), opts)
				if err != nil {
					return nil, err
				}
				return r.Map(), nil
			})
		}),
	}
	js.Global().Set("neurolov", js.ValueOf(api))
	if ready := js.Global().Get("neurolovReady"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {}
}

// promise runs f in a goroutine and returns a Promise of its result.
func promise(f func() (any, error)) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve, reject := args[0], args[1]
		go func() {
			defer executor.Release()
			v, err := f()
			if err != nil {
				reject.Invoke(js.Global().Get("Error").New(err.Error()))
				return
			}
			resolve.Invoke(js.ValueOf(v))
		}()
		return nil
	})
	return js.Global().Get("Promise").New(executor)
}

func get(o js.Value, k string) js.Value {
	if o.Type() != js.TypeObject {
		return js.Undefined()
	}
	return o.Get(k)
}

func field(o js.Value, k string) string { return text(get(o, k)) }

func text(v js.Value) string {
	if v.Type() == js.TypeString {
		return v.String()
	}
	return ""
}

func number(v js.Value, def float64) float64 {
	if v.Type() == js.TypeNumber {
		return v.Float()
	}
	return def
}

// startOptions reads the page's {type:"start"} message.
func startOptions(m js.Value) StartOptions {
	id := get(m, "identity")
	return StartOptions{
		Coordinator: field(m, "coordinator"), Backend: field(m, "backend"),
		Share: number(get(m, "share"), 1), Identity: field(id, "kind"), WalletAddress: field(id, "address"),
	}
}
