//go:build js

// Package jsutil holds the small syscall/js helpers the browser client
// shares: awaiting a promise from a goroutine and turning thrown values into
// Go errors.
package jsutil

import (
	"errors"
	"fmt"
	"syscall/js"
)

// ErrRejected reports a rejected promise; the error's text is the rejection
// reason's.
var ErrRejected = errors.New("js: promise rejected")

// Await blocks until promise settles and returns its value, or an error
// wrapping ErrRejected. It must run in a goroutine, never inside a
// js.FuncOf callback: the promise settles only once control returns to the
// JavaScript event loop.
func Await(promise js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	then := js.FuncOf(func(_ js.Value, args []js.Value) any {
		v := js.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		ch <- result{v: v}
		return nil
	})
	defer then.Release()
	catch := js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := "rejected"
		if len(args) > 0 {
			msg = Text(args[0])
		}
		ch <- result{err: fmt.Errorf("%w: %s", ErrRejected, msg)}
		return nil
	})
	defer catch.Release()
	js.Global().Get("Promise").Call("resolve", promise).Call("then", then, catch)
	r := <-ch
	if r.err != nil {
		return js.Undefined(), r.err
	}
	return r.v, nil
}

// Text returns a JavaScript value as text: an Error's message, a string
// as is, anything else through String().
func Text(v js.Value) string {
	switch {
	case v.Type() == js.TypeString:
		return v.String()
	case v.Type() == js.TypeObject && v.Get("message").Type() == js.TypeString:
		return v.Get("message").String()
	case v.Type() == js.TypeObject:
		return v.Call("toString").String()
	}
	return v.String()
}

// Call calls method on v and turns a thrown exception into an error
// instead of a panic.
func Call(v js.Value, method string, args ...any) (res js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			if je, ok := r.(js.Error); ok {
				err = errors.New(Text(je.Value))
				return
			}
			panic(r)
		}
	}()
	return v.Call(method, args...), nil
}
