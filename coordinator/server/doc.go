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
// (protocol.Decoder, buffers released between frames) and hands each
// frame's events to the loop as one batch; a writer goroutine, started when
// messages wait and ended when none do, which packs every queued message
// into as few frames as fit (coder/websocket flushes each Write, so
// batching is what keeps the coordinator's CPU per shard low); and a timer
// that pings it. An idle worker costs its reader alone (`neurolov bench
// conns` measures the bytes). A malformed
// frame closes its connection with status 1008 and the reason; an oversized
// one with 1009; either way the worker's leases are re-issued. A banned
// address's connections close with the private status 4001
// (wsio.StatusBanned), the only one a worker takes as a ban. A worker whose
// frames or Hello name another protocol version is closed with 4002
// (wsio.StatusVersion), which a worker takes as "update me" (a browser tab:
// "reload this page") rather than a reason to reconnect.
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
// bodies being read, a quarter for results being assembled and sent; a
// peer over its kind's share is refused (worker: close 1013 with the
// figures; upload or download: 503 and a Retry-After), never left to
// exhaust the process.
// A worker frame is charged as it arrives (framebuf.go: in segments, never
// much more than what was sent), and only past a reserve of 64 KiB per
// connection that no budget charges, so that however much of the budget
// others hold, handshakes, heartbeats and small results go through: a
// worker is closed 1013 only when its own large message does not fit. One
// worker address may hold at most half the frames share (identities are
// free, but an attacker must spend them). A job upload is charged what the
// safetensors reader allocates, as it allocates it (tensor.
// ReadSafetensorsCharged), never the length it claims, past a 64 KiB
// reserve, and one API key holds at most half the uploads share (so
// Config.MaxJobBytes is at most an eighth of the budget). A result
// download holds its job's inputs and twice its outputs (assemblyBytes)
// from its assembly until it is written, one API key at most half the
// results share; a job whose result would need more is refused at
// submission (400), and Planner.MaxOutputBytes is lowered to match.
//
// Large tensors (weights, wide B tiles) travel once per connection as
// TensorData chunks and are then named by content hash; a worker that lost
// its copy asks with Fetch.
//
// The HTTP API (README, "API") takes jobs as safetensors with an API key,
// reports progress and serves results assembled from verified shards. A
// job belongs to the key that submitted it (store.JobRecord.Owner): its
// status, result, listing and cancellation need that key or an admin key;
// a request without a key gets 401 before any lookup, and another key 404,
// the answer of a job that does not exist. Workers, ledger and metrics are
// public.
// With the memory store a restarted coordinator starts empty.
//
// Where the server recovers from a panic, and where it must not.
// Verification, planning and assembly are guarded: a panic there (a
// coordinator bug, say a shape the checks let through) becomes an error
// wrapping ErrInternal, logged at Error with its stack, that fails the job
// at hand while the coordinator goes on. The checker (checker.go) recovers
// inside each call the scheduler makes, so that the scheduler gets an
// ordinary answer and completes its transition: Unverifiable for a check
// (its job fails, no worker is blamed; a batch that panics is checked
// result by result, so that only the culprit's job fails), disagreement for
// a replica comparison (the dispute is then settled by recompute, which
// blames only a result found wrong), nothing settled for a settlement, no
// confirmation, an error for a doability check (the shard fails), no
// canary. A panic in planning answers the submission
// with a 500 and creates nothing; one in assembly answers the result
// request with a 500 and notes it in the job's error (a done job stays
// done, its results stored). Nothing else recovers: a panic in the
// scheduler's state machine, in the loop while it carries out actions, or
// in a function run on the loop (Server.call) stops the process, because a
// half-applied transition — a lease granted but not recorded, pay without
// its result — must never be served. Do not add a recover to Run, handle
// or apply.
package server
