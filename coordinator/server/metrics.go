package server

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the coordinator's Prometheus series, on a registry of its own
// so that several servers (tests) do not collide.
type metrics struct {
	reg         *prometheus.Registry
	workers     *prometheus.GaugeVec
	leases      prometheus.Gauge
	jobs        prometheus.Counter
	results     prometheus.Counter
	accepted    prometheus.Counter
	rejected    prometheus.Counter
	corrections prometheus.Counter
	caught      prometheus.Counter
	traffic     traffic
}

// traffic counts the frames exchanged with workers and the protocol
// messages they carried; messages per frame is the batching factor that
// keeps the cost per message low.
type traffic struct {
	framesIn, messagesIn, framesOut, messagesOut atomic.Uint64
}

// Traffic is a snapshot of the worker traffic counters.
type Traffic struct {
	FramesIn, MessagesIn, FramesOut, MessagesOut uint64
}

func (t *traffic) snapshot() Traffic {
	return Traffic{t.framesIn.Load(), t.messagesIn.Load(), t.framesOut.Load(), t.messagesOut.Load()}
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		workers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "neurolov_workers", Help: "Connected workers by backend.",
		}, []string{"backend"}),
		leases: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "neurolov_leases_open", Help: "Shard replicas currently leased to workers.",
		}),
		jobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "neurolov_jobs_submitted_total", Help: "Jobs submitted.",
		}),
		results: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "neurolov_results_total", Help: "Results received from workers.",
		}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "neurolov_shards_verified_total", Help: "Shard results accepted or corrected after verification.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "neurolov_results_rejected_total", Help: "Results refused: wrong, late, duplicate or unleased.",
		}),
		corrections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "neurolov_corrections_total", Help: "Accepted results replaced after re-verification.",
		}),
		caught: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "neurolov_cheaters_caught_total", Help: "Worker addresses caught returning wrong results.",
		}),
	}
	counted := func(name, help, direction string, v *atomic.Uint64) prometheus.CounterFunc {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: name, Help: help, ConstLabels: prometheus.Labels{"direction": direction},
		}, func() float64 { return float64(v.Load()) })
	}
	const framesHelp = "WebSocket frames exchanged with workers, by direction (in: from workers, out: to them)."
	const messagesHelp = "Protocol messages those frames carried, by direction."
	m.reg.MustRegister(
		counted("neurolov_worker_frames_total", framesHelp, "in", &m.traffic.framesIn),
		counted("neurolov_worker_frames_total", framesHelp, "out", &m.traffic.framesOut),
		counted("neurolov_worker_messages_total", messagesHelp, "in", &m.traffic.messagesIn),
		counted("neurolov_worker_messages_total", messagesHelp, "out", &m.traffic.messagesOut),
	)
	m.reg.MustRegister(m.workers, m.leases, m.jobs, m.results, m.accepted, m.rejected, m.corrections, m.caught,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
