package browser

// States of the client, as the page shows them.
const (
	StateIdle       = "idle"       // not started
	StateMeasuring  = "measuring"  // timing the backends
	StateConnecting = "connecting" // dialling or re-dialling the coordinator
	StateWorking    = "working"    // connected, taking shards
	StatePaused     = "paused"     // paused by the volunteer (or a share of 0)
	StateError      = "error"      // stopped; Message says why and what to do
	// StateReload: stopped because the coordinator speaks a newer protocol
	// than this tab's client; reloading the page loads the client it serves.
	StateReload = "reload"
)

// Backend names, as in the handshake and the page's setting.
const (
	BackendAuto    = "auto"
	BackendWebGPU  = "webgpu"
	BackendCPUWasm = "cpu-wasm"
)

// Adapter describes the WebGPU adapter, from adapter.info.
type Adapter struct {
	Vendor, Architecture, Description string
	IsFallbackAdapter                 bool
}

// Status is what the worker tells the page ({type:"status"} messages).
type Status struct {
	State   string
	Backend string
	Device  string
	Adapter *Adapter
	// GFLOPSWebGPU and GFLOPSCPU are the speeds measured at start-up on the
	// MLP shard; GFLOPSWebGPU is nil when WebGPU was not measured.
	GFLOPSWebGPU *float64
	GFLOPSCPU    float64
	Address      string
	ShardsDone   int64
	// Verified and EarnedFLOPs come from the coordinator's ledger
	// (GET /v1/ledger, polled while connected): shards and FLOPs paid to
	// this address, over all its sessions.
	Verified    int64
	Rejected    int64
	GFLOPSLive  float64
	EarnedFLOPs float64
	Share       float64
	Message     string
}

// Map returns the status as the message posted to the page.
func (s Status) Map() map[string]any {
	m := map[string]any{
		"type": "status", "state": s.State, "backend": s.Backend, "device": s.Device,
		"adapter": nil, "gflopsWebGPU": nil, "gflopsCPU": s.GFLOPSCPU, "address": s.Address,
		"shardsDone": s.ShardsDone, "verified": s.Verified, "rejected": s.Rejected,
		"gflopsLive": s.GFLOPSLive, "earnedFLOPs": s.EarnedFLOPs, "share": s.Share, "message": s.Message,
	}
	if a := s.Adapter; a != nil {
		m["adapter"] = map[string]any{
			"vendor": a.Vendor, "architecture": a.Architecture, "description": a.Description,
			"isFallbackAdapter": a.IsFallbackAdapter,
		}
	}
	if s.GFLOPSWebGPU != nil {
		m["gflopsWebGPU"] = *s.GFLOPSWebGPU
	}
	return m
}
