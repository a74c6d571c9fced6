package server

import (
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
	m.reg.MustRegister(m.workers, m.leases, m.jobs, m.results, m.accepted, m.rejected, m.corrections, m.caught,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
