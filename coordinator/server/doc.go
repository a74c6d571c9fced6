// Package server is the coordinator's network side: the worker WebSocket
// endpoint, the HTTP API and the loop goroutine that owns the scheduler.
//
// One goroutine (Run) owns the pure scheduler and feeds it events: workers
// joining and leaving, results, worker errors, job submissions and a
// periodic tick. It carries out the scheduler's actions: it queues Assign,
// Cancel and Error messages on worker connections, writes verified results,
// pay and forfeits to the store, and closes the connections of banned
// addresses.
//
// Each worker connection has a reader goroutine, which decodes frames
// (protocol.Decoder, pooled buffers released between frames) and hands each
// frame's events to the loop as one batch; a writer goroutine, started when
// messages wait and ended when none do, which packs every queued message
// into as few frames as fit (coder/websocket flushes each Write, so
// batching is what keeps the coordinator's CPU per shard low); and a timer
// that pings it. An idle worker costs its reader alone (`neurolov bench
// conns` measures the bytes). A malformed
// frame closes its connection with status 1008 and the reason; an oversized
// one with 1009; either way the worker's leases are re-issued. A banned
// address's connections close with the private status 4001
// (wsio.StatusBanned), the only one a worker takes as a ban.
//
// The loop stages what it sends while it handles the events at hand (up to
// BurstEvents of them) and then wakes each writer once, so that a burst of
// results is answered in full frames. The results of a burst, of every
// worker, reach the scheduler together (Scheduler.ResultBatches, before
// any other kind of event breaks the run), so that the checker verifies
// them in one verify.Verifier.CheckAll: results sharing an input matrix
// (the weights of an mlp-infer job, the B of a column of tiles) read it
// once, while each still gets its own secret vector drawn after arrival.
//
// What peers can make the coordinator hold is bounded twice. In time,
// every connection is paced (peerConn for workers, paceRequests for HTTP):
// a message, a request body, each write must move at Config.MinRate after
// Config.RateGrace, a worker must send something every PingEvery plus
// PingTimeout, and an idle keep-alive connection closes after IdleTimeout.
// In memory, Config.MemoryBudget (`serve -memory-budget`) is shared by all
// connections and requests: an eighth for worker frames being read, a
// quarter for chunked outputs awaiting their Results, a quarter for request
// bodies being read; a peer over its kind's share is refused (worker: close
// 1013 with the figures; upload: 503), never left to exhaust the process.
//
// Large tensors (weights, wide B tiles) travel once per connection as
// TensorData chunks and are then named by content hash; a worker that lost
// its copy asks with Fetch.
//
// The HTTP API (README, "API") takes jobs as safetensors with an API key,
// reports progress and serves results assembled from verified shards.
// With the memory store a restarted coordinator starts empty.
package server
