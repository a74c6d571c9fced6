package server

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
)

// ErrInternal reports a panic recovered in verification, planning or
// assembly: a bug in the coordinator, neither the job's fault nor a
// worker's. The job at hand fails with it and the coordinator goes on (see
// the package documentation for where it recovers and where it must not).
var ErrInternal = errors.New("server: internal error")

// catch, deferred, recovers a panic of the stage it guards: it sets *errp
// to an error wrapping ErrInternal and logs the panic at Error with its
// stack and the attribute key=value (the job or kernel at hand; strings, so
// that deferring catch allocates nothing). It must be deferred directly
// (defer catch(...)), or recover sees nothing.
func catch(log *slog.Logger, errp *error, stage, key, value string) {
	p := recover()
	if p == nil {
		return
	}
	*errp = fmt.Errorf("%w in %s (a coordinator bug, not the job's or a worker's fault): %v", ErrInternal, stage, p)
	log.Error("recovered a panic: the job at hand fails, the coordinator goes on",
		key, value, "stage", stage, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
}
