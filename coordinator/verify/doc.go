// Package verify judges the results workers return, without trusting
// them and, for most shards, without recomputing them.
//
// It is pure: it imports the standard library, tensor, shaders and
// golang.org/x/sys/cpu (to pick its assembly kernels), keeps no clock and
// draws randomness only from the *rand.Rand its caller passes. The
// scheduler calls it synchronously on every result, so a Verifier keeps
// its scratch buffers between calls, and what it computed from the input
// tensors it saw last (see Speed), and checking a result allocates
// nothing in steady state (a tensor it has not seen costs one small
// allocation). A Verifier is not safe for concurrent use.
//
// # Layers of trust
//
//  1. Shapes and finiteness: the outputs must have the count, shapes and
//     sizes the kernel gives (CheckShapes) and hold no NaN or ±Inf.
//  2. Freivalds' check (Verifier.Freivalds) of every linear product, a
//     matmul tile or each layer of an MLP from the pre-activations the
//     worker returns, in O(n²) with a fresh secret random vector per
//     product: catches gross cheating at once (skipped work, stale or
//     wrong weights, a bias, random output), and a few wrong elements per
//     tile, down to the floor below; a row over its probabilistic bound
//     is recomputed exactly, which alone may fail it.
//  3. Spot checks (Verifier.SpotCheck): a few output elements recomputed
//     exactly, O(K) each: they catch any pervasive error above the
//     per-element bound, and a rare one with probability spots/N.
//  4. Replicas (Verifier.Agree): two results of one shard must agree
//     element by element within tolerance. A dispute is settled by
//     computation, never by vote (Verifier.Settle): a bounded random
//     sample of the disputed elements is recomputed exactly (for an MLP
//     layer after the first, the sampled row's forward pass from X), and
//     each result beyond its bound there is wrong. Two results within
//     their bounds differ by less than the tolerance, so on every
//     disputed element at least one side is wrong, and never an honest
//     one. Verifier.Confirm recomputes whole rows of one result, the
//     coordinator's own confirmation: half of them the rows with the
//     largest Freivalds residual under a fresh vector, half at random.
//  5. Canaries (MakeCanary): a verified shard with its rows (and, for
//     matmul, columns and signs) permuted, so that neither content hashes
//     nor shapes give it away, judged by Agree against the permuted known
//     answer.
//
// Verifier.Check runs 1–3. Reputation and adaptive replication, which
// decide how often 4 and 5 happen, live in the scheduler.
//
// # The error bound
//
// Results from different GPUs, drivers and CPUs are not bit-identical: a
// dot product of length K may be summed in any order (sequential, blocked,
// tree, with or without FMA). Every such float32 evaluation obeys
//
//	|fl(Σ_k a_k·b_k) − Σ_k a_k·b_k| ≤ γ_K·Σ_k |a_k·b_k|,   γ_K = K·u/(1−K·u),
//
// with u = 2^-24 (shaders.Unit, shaders.Gamma; Higham, Accuracy and
// Stability of Numerical Algorithms, §3.1); a bias adds one more term
// (K' = K+1). The checks multiply the bound by Safety = 2, which admits
// arithmetic that is merely faithful (1 ulp per operation, e.g. round
// toward zero) rather than correctly rounded, and add 2^-126 (the smallest
// normal float32) per operation and per unit of Σ|a| and Σ|b| for
// hardware that flushes subnormal numbers to zero (WGSL allows it). The checks themselves run in float64 and add a bound on their own
// rounding, some 2^29 times smaller. So an honest element c_ij satisfies
//
//	|c_ij − exact_ij| ≤ bound_ij = Safety·(γ_K'·S_ij + flush) + float64 slack,
//	S_ij = Σ_k |a_ik·b_kj| + |bias_j|,
//
// which is what a spot check tests (ElementBound). These are worst-case
// bounds: measured honest errors grow like √K·u rather than K·u and stay
// far below them (for K = 512, near 1/500 of the threshold; the Ratio of
// a Verdict shows how far), which Freivalds' probabilistic bound (below)
// uses. Reduced-precision arithmetic (TF32, bf16) is not honest here
// and fails.
//
// Replicas. Both replicas obey the bound, so they differ by at most twice
// it. Computing S_ij costs O(K) per element, O(mnK) in all, so Agree
// bounds it by Cauchy–Schwarz from norms that cost O(mK + nK):
// S_ij ≤ ‖A_i‖₂·‖B_·j‖₂ + |bias_j|. The tolerance has the form
//
//	|a_ij − b_ij| ≤ atol_ij + rtol·scale_ij + prop_ij,
//	rtol = 2·Safety·γ_K',   scale_ij = ((‖A^a_i‖₂+‖A^b_i‖₂)/2)·‖B_·j‖₂ + |bias_j|,
//
// where atol_ij is the tiny flush term (it lets exact zeros agree) and,
// for layers l > 1 of mlp-infer, whose left operands are each replica's
// own relu(Z_{l−1}), prop_ij = ‖relu(Z^a_{l−1,i}) − relu(Z^b_{l−1,i})‖₂ ·
// ‖W_l,·j‖₂ bounds the difference carried in from the layer before
// (Cauchy–Schwarz again; relu is 1-Lipschitz). ElementTolerance returns
// tol_ij for one element.
//
// # Freivalds' check and its floor
//
// For a product C = A·B (+ bias) the check draws r with entries uniform
// in [1/2, 1) and computes, row by row in float64, d_i = |C·r −
// (A·(B·r) + bias·r)|_i, which it holds against two thresholds.
//
// The worst-case bound. An honest row differs by at most Σ_j
// r_j·bound_ij ≤ Σ_j bound_ij, since every r_j is below 1; the check uses
// that bound for r ≡ 1, computable in O(mk + kn + mn) as
//
//	T_w,i = Safety·γ_K'·(|A|·s + Σ_j |bias_j|)_i + flush + float64 slack,
//	s_k = Σ_j |b_kj|,
//
// where s depends on B alone, so a Verifier computes it once per B tensor
// (see Speed). A row over T_w is wrong whatever the arithmetic: the
// result fails. But T_w is about N·bound for a row of N columns, so on its
// own it catches a single wrong element only above about 3·N·bound.
//
// The probabilistic bound. Rounding errors of round-to-nearest behave like
// independent errors of mean zero (Higham and Mary, A New Approach to
// Probabilistic Rounding Error Analysis, 2019), and under that model d_i
// is the end of a martingale — every rounding of every element of the row
// is one step, of size at most r_j·u·S_ij, K' of them per element — so by
// Azuma's inequality it exceeds
//
//	T_p,i = λ·u·√K'·(1+γ_K')·√(Σ_j r_j²·(‖f(A_i)‖₂·‖B_·j‖₂ + |bias_j|)²) + flush + float64 slack
//
// with probability at most 2·exp(−λ²/2) ≈ 3·10⁻⁸ (λ = 6; Cauchy–Schwarz
// bounds S_ij by the norms, which cost O(1) per row: the pass over A sums
// ‖A_i‖₂² beside A·(B·r) and |A|·s, and B's column norms are cached).
// T_p is about λ·√(N/K)·‖·‖ where T_w is about N·‖·‖: for a 512×512 tile
// with K = 256, some 40 times smaller. But the model is only a model:
// directed rounding, or data whose elements repeat the same roundings
// (every entry equal), exceed T_p honestly. So a row over T_p but within
// T_w is never failed for it: the check recomputes that row exactly in
// float64 (O(K·n)) and fails the result only at an element beyond its
// bound (Method MethodRecompute), as a spot check would. The rows over
// T_p are all recomputed when they fit a budget of about the check's own
// cost ((mk + kn + mn)/(K'·n) rows per product, at least one), and
// otherwise a uniform random sample of them as large as the budget,
// drawn with randomness derived from the product's secret vector r (so
// CheckAll, which draws the same vectors, picks the same rows);
// Verdict.Recomputed counts them and Verdict.Unchecked those the sample
// left, which passed on T_w alone. The sample is random rather than the
// rows most over first because how far over a row goes is the worker's
// to choose: rows moved by just under their elements' bounds, all of one
// sign, go far over T_p and pass the recompute, and would spend a budget
// spent by rank on rows the worker made pass.
//
// For mlp-infer it checks Z_1·r ≈ X·(W_1·r) + b_1·r and Z_l·r ≈
// relu(Z_{l−1})·(W_l·r) + b_l·r with the worker's own Z_{l−1}, so a
// worker cannot pass a layer without computing it from the one before.
// Each product gets its own vector, drawn after the result arrived and
// never sent or reused, so an error the worker chose is independent of r.
// Hence the floor (FreivaldsFloor):
//
//   - A single element perturbed by more than 4·T_p (for r ≡ 1, which
//     bounds every r drawn) puts its row over T_p whatever r is — r_j is
//     at least 1/2, and the rest of the row's honest rounding takes at
//     most T_p — so the row is flagged, and recomputed when the rest of
//     the result stays under T_p (the budget is at least one row), and
//     the element found, when it is also more than 1.5 times its bound
//     off; above 3·T_w (the honest rounding takes at most T_w/Safety)
//     the row fails outright. The floor is the smaller of the two: for a
//     512×512 tile with K = 256 about 10 times the element's replica
//     tolerance (about λ·√(N/K) times: 5 and 4.5 for the first two layers
//     of a 784-512-256-10 MLP), where T_w alone gave about N/2 times. It
//     holds on a single result whenever the honest rounding obeys the
//     model and no more rows than the budget go over T_p; the tests check
//     it on every backend.
//   - A pattern of one sign (a bias, a scaling of positive outputs, stale
//     weights) whose magnitudes add up to more than the floor is caught
//     the same way: the entries of r are positive, so it adds up.
//   - An error whose signs vary along the row partly cancels: a pattern
//     of random signs and size ε per element shows as about 0.76·√N·ε,
//     so it goes over T_p from ε ≈ λ·u·√K'·‖·‖ — below the replica
//     tolerance — but the recompute finds an element only where one is
//     beyond its bound; an adversary who pairs +δ and −δ in one row
//     passes with probability about 4·T_p/δ.
//   - A result that puts more rows over T_p than the budget covers (a
//     cheater's within-bound "decoy" rows, or data that breaks the model)
//     has a secret random sample of them recomputed, so an error between
//     4·T_p and 3·T_w hidden among F flagged rows is caught with
//     probability budget/F, and the rest pass on T_w alone:
//     Verdict.Unchecked > 0 says so, and such a result is Doubtful — the
//     scheduler never accepts it on one worker's word, but asks another
//     identity's replica, and a disagreement is settled by recompute.
//
// So Freivalds catches gross cheating at once and a few wrong elements a
// tile on a single result; spot checks, replicas and canaries catch
// subtler cheats. Column blocks — vectors supported on g blocks of the
// columns, A·(B·R) with R of n×g — would cut T_p by a further √g (and T_w
// by g) for (g−1)·m·k more multiply-adds, a pass of g vectors over A: the
// probabilistic bound reaches the floor's goal (16 times the tolerance)
// at g = 1, within the cost of the check of one vector, so the check
// keeps one. Entries of both signs would not make a same-sign error add
// up; entries uniform in [0, 1) would let any single element whose r_j
// happens to be near zero through, so that no size of error would always
// be caught.
//
// # Speed
//
// Check of a product reads each of B, A and C once: B·r, then A·(B·r)
// with |A|·s and ‖A_i‖₂² in the same pass, then C·r; Agree reads the two results
// once, with the norms of relu of a hidden layer's outputs for the next
// layer in the same pass. The inner loops (kernels.go) run over float32
// rows in float64; on amd64 with AVX2 and FMA they are assembly
// (kernels_amd64.s) that converts four elements per instruction and works
// on four rows at once. The purego build tag, or another architecture,
// selects the portable Go loops; the two differ only in float64 rounding,
// which every bound allows for. relu here maps every value not above
// zero, NaN included, to +0 (a NaN output is caught in its own layer).
//
// A Verifier caches what depends on an input tensor alone — s and the
// column norms of a B (a matmul tile's B, an MLP's weights), the row
// norms of an A — for the last 32 input matrices it saw, since the
// scheduler passes the same tensors for every replica of a shard and
// shards share them. An entry is keyed by the tensor's identity (a weak
// pointer: the cache keeps no tensor alive and cannot mistake a new
// tensor for a collected one), its data's address, length and shape, and
// a fingerprint of 16 sampled elements. Inputs must therefore not change
// in place while a Verifier may have them cached, which the scheduler
// never does; a change that moves, resizes or reshapes the data or alters
// a sampled element is noticed, any other is not: call
// Verifier.ForgetInputs after one.
//
// What is left is bound by memory traffic: a Check reads every byte of
// the shard's inputs and result once (some 2 MB for a 512×512 matmul
// tile with K = 256, 3.7 MB for an mlp-infer batch of 256 through
// 784-512-256-10), and an Agree both results once, so that neither can be
// much cheaper than streaming them (BenchmarkCheckMatmul512K256 and its
// siblings measure both shards, with and without a warm cache).
//
// # Batches
//
// Verifier.CheckAll checks a batch of results that have all arrived,
// each exactly as Check would. Its shards often share their right-hand
// matrices (every shard of an mlp-infer job has the same weights, a
// column of matmul tiles the same B), and B·r is the largest read of a
// check; so CheckAll draws every vector first, in item and layer order,
// and computes the products B·r_v of all the results sharing one B in
// one pass over it, block of rows by block of rows, each block read from
// memory once and then from cache for the other vectors. Only the pass
// over B is shared: every result still gets its own fresh secret vector
// per product, drawn after every result of the batch has arrived, used
// for that result only and never reused or sent — the same result twice
// in a batch is checked with two independent vectors — so a worker's
// errors are as independent of r as under Check. The rest of each check
// (A, C and the spot checks) runs result by result. It saves memory
// traffic when the shared matrices would not stay in cache from one Check
// to the next; when they do, as for a burst of 8 mlp-infer shards in a
// 16 MiB cache, it costs about what back-to-back Checks do
// (BenchmarkCheckAll).
package verify
