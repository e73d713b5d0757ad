//! Seeded parallel ensembles with streaming statistics.
//!
//! Path `p` draws from `derive_stream(seed, p)` alone. Paths are grouped in chunks of
//! [`CHUNK`]; each chunk folds its paths, in order, into Welford accumulators (one per save
//! point and observable); chunk results are merged into the total strictly in chunk order. Rayon
//! only decides which thread computes which chunk, so the result is bit-for-bit the same for any
//! number of threads. Chunks run in batches of a few per thread, so memory is bounded by the
//! batch, not by the number of paths.
//!
//! A path that diverges (non-finite state or observable, or a state beyond the threshold) at
//! save point `s` contributes to the statistics of save points before `s` only, and is counted
//! in `diverged[s..]`: a diverged path is reported, never averaged into a NaN.

use crate::distribute::{ChunkWork, DistributeError, Distributor, EnsembleCall};
use crate::error::SdeError;
use crate::increments::Increments;
use crate::problem::Sde;
use crate::rng::{derive_stream, PathRng};
use crate::scheme::Scheme;
use crate::solver::{Grid, Solver, SolverWorkspace};
use crate::stats::{Summary, Welford};
use rayon::prelude::*;
use serde::Serialize;

/// Paths per chunk: the unit of work and of deterministic merging.
pub const CHUNK: usize = 64;

/// Memory the chunk results of one batch may take before they are merged.
const BATCH_BYTES: usize = 16 << 20;

/// Something that simulates one path from its own random stream and reports observables at a
/// fixed number of save points. Implemented by [`SdePaths`] for SDEs; the comparison crate
/// implements it for discrete optimizers and for coupled (discrete, SDE) pairs.
pub trait PathSimulation: Sync {
    /// Buffers for one path, reused across the paths of a chunk.
    type Workspace: Send;
    fn workspace(&self) -> Self::Workspace;
    fn n_save(&self) -> usize;
    fn n_observables(&self) -> usize;
    /// Simulates path number `path.index` from its own stream `path.rng`, writing observable `o` at save point `s` to
    /// `out[s * n_observables + o]`. Returns how many save points (from the first) hold valid
    /// values: `n_save` unless the path diverged. Within the valid save points a NaN marks a
    /// value missing for that observable alone; it is left out of that observable's statistics.
    fn simulate(&self, path: PathInput<'_>, ws: &mut Self::Workspace, out: &mut [f64]) -> usize;

    /// Integer totals the simulation adds up over the paths it simulates besides its
    /// observables (e.g. random numbers drawn), read by a distributed ensemble after this
    /// process's chunks. None by default.
    fn counters(&self) -> Vec<u64> {
        Vec::new()
    }

    /// Sets the totals of [`PathSimulation::counters`]: a distributed ensemble writes back the
    /// totals over every process, so the simulation reports what one process would have counted.
    fn set_counters(&self, _totals: &[u64]) {}
}

/// The path one [`PathSimulation::simulate`] call simulates: its number and its own stream.
pub struct PathInput<'a> {
    pub index: u64,
    pub rng: &'a mut PathRng,
}

impl<'a> PathInput<'a> {
    pub fn new(index: u64, rng: &'a mut PathRng) -> Self {
        PathInput { index, rng }
    }
}

/// Per-save-point, per-observable statistics of an ensemble.
#[derive(Clone, Debug, Serialize)]
pub struct EnsembleStats {
    pub paths: u64,
    pub n_save: usize,
    pub n_observables: usize,
    /// `stats[s * n_observables + o]`.
    pub stats: Vec<Welford>,
    /// Paths diverged at or before save point `s`.
    pub diverged: Vec<u64>,
}

impl EnsembleStats {
    fn new(n_save: usize, n_obs: usize) -> Self {
        EnsembleStats {
            paths: 0,
            n_save,
            n_observables: n_obs,
            stats: vec![Welford::default(); n_save * n_obs],
            diverged: vec![0; n_save],
        }
    }

    /// Heap size of the statistics of `n_save` save points × `n_obs` observables.
    fn bytes(n_save: usize, n_obs: usize) -> usize {
        n_save * (n_obs * std::mem::size_of::<Welford>() + std::mem::size_of::<u64>())
    }

    fn merge(&mut self, other: &EnsembleStats) {
        self.paths += other.paths;
        for (a, b) in self.stats.iter_mut().zip(&other.stats) {
            a.merge(b);
        }
        for (a, b) in self.diverged.iter_mut().zip(&other.diverged) {
            *a += b;
        }
    }

    /// The statistics of a chunk accumulated by [`ChunkAcc`].
    fn from_chunk(acc: &ChunkAcc, n_save: usize, n_obs: usize) -> Self {
        EnsembleStats {
            paths: acc.paths,
            n_save,
            n_observables: n_obs,
            stats: acc
                .count
                .iter()
                .zip(&acc.mean)
                .zip(&acc.m2)
                .map(|((&c, &mean), &m2)| Welford {
                    count: c as u64,
                    mean,
                    m2,
                })
                .collect(),
            diverged: acc.diverged.clone(),
        }
    }

    /// Accumulator of observable `o` at save point `s`.
    pub fn get(&self, s: usize, o: usize) -> &Welford {
        &self.stats[s * self.n_observables + o]
    }

    /// Mean, variance, standard error and 95% half-width of observable `o` at save point `s`.
    pub fn summary(&self, s: usize, o: usize) -> Summary {
        self.get(s, o).summary()
    }

    /// Mean of observable `o` at save point `s` over the paths that had not diverged.
    pub fn mean(&self, s: usize, o: usize) -> f64 {
        self.summary(s, o).mean
    }

    /// Paths that diverged before the end.
    pub fn diverged_total(&self) -> u64 {
        self.diverged.last().copied().unwrap_or(0)
    }
}

/// The Welford accumulators of one chunk, one array per field: a path's values fold in with
/// the operations of [`Welford::push`] (the same bits), but without a branch per value and over
/// contiguous arrays, which the compiler vectorizes. Counts are kept as `f64` (exact: a chunk
/// holds [`CHUNK`] paths), the value `Welford::push` divides by.
struct ChunkAcc {
    paths: u64,
    count: Vec<f64>,
    mean: Vec<f64>,
    m2: Vec<f64>,
    diverged: Vec<u64>,
}

impl ChunkAcc {
    fn new(n_save: usize, n_obs: usize) -> Self {
        let cells = n_save * n_obs;
        ChunkAcc {
            paths: 0,
            count: vec![0.0; cells],
            mean: vec![0.0; cells],
            m2: vec![0.0; cells],
            diverged: vec![0; n_save],
        }
    }

    /// Folds one path's values in (its first `valid` save points, `n_obs` values each).
    #[inline]
    fn push_path(&mut self, values: &[f64], valid: usize, n_obs: usize) {
        self.paths += 1;
        let cells = valid * n_obs;
        // A NaN inside the valid save points marks a value that is missing for that observable
        // only (e.g. one side of a coupled pair that diverged while the other goes on): it is left
        // out of that accumulator, whose own `count` then says how many paths it holds. The
        // update is computed for every value and kept only for the others.
        let (count, mean, m2) = (
            &mut self.count[..cells],
            &mut self.mean[..cells],
            &mut self.m2[..cells],
        );
        for (((c, mean), m2), &x) in count
            .iter_mut()
            .zip(mean.iter_mut())
            .zip(m2.iter_mut())
            .zip(&values[..cells])
        {
            let keep = !x.is_nan();
            let n = *c + 1.0;
            let delta = x - *mean;
            let new_mean = *mean + delta / n;
            let new_m2 = *m2 + delta * (x - new_mean);
            *c = if keep { n } else { *c };
            *mean = if keep { new_mean } else { *mean };
            *m2 = if keep { new_m2 } else { *m2 };
        }
        for d in &mut self.diverged[valid..] {
            *d += 1;
        }
    }
}

/// Every path's observables, kept for statistics that do not stream (quantiles).
/// Memory grows with the number of paths: use for trajectory plots, not for weak errors.
#[derive(Clone, Debug)]
pub struct PathValues {
    pub n_save: usize,
    pub n_observables: usize,
    /// `values[(p * n_save + s) * n_observables + o]`.
    pub values: Vec<f64>,
    /// Number of valid save points of each path.
    pub valid: Vec<u32>,
}

impl PathValues {
    /// Empty, with room for `paths` paths of the shape of `stats`.
    fn new(stats: &EnsembleStats, paths: u64) -> Self {
        let cells = stats.n_save * stats.n_observables;
        PathValues {
            n_save: stats.n_save,
            n_observables: stats.n_observables,
            values: Vec::with_capacity(paths as usize * cells),
            valid: Vec::with_capacity(paths as usize),
        }
    }

    /// Empirical quantile `q ∈ [0, 1]` of observable `o` at save point `s` over all paths
    /// (linear interpolation between order statistics). A path that diverged at or before `s`
    /// counts as `+∞`: it sits above every finite value, so a band that reaches it shows that
    /// paths blew up instead of hiding them. NaN if there are no paths.
    pub fn quantile(&self, s: usize, o: usize, q: f64) -> f64 {
        self.quantiles(s, o, &[q])[0]
    }

    /// Several quantiles of observable `o` at save point `s` from one sort (see
    /// [`PathValues::quantile`]).
    pub fn quantiles(&self, s: usize, o: usize, levels: &[f64]) -> Vec<f64> {
        let mut v: Vec<f64> = (0..self.valid.len())
            .map(|p| {
                if (self.valid[p] as usize) > s {
                    self.values[(p * self.n_save + s) * self.n_observables + o]
                } else {
                    f64::INFINITY
                }
            })
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        levels.iter().map(|&q| quantile_sorted(&v, q)).collect()
    }
}

/// Quantile `q` of `v` (reorders `v`); NaN for an empty slice.
pub fn quantile_in_place(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    quantile_sorted(v, q)
}

/// Quantile `q` of an already sorted slice; NaN for an empty slice.
pub fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    if lo == hi || v[lo] == v[hi] {
        // Also keeps `∞ − ∞` out when both order statistics are infinite.
        return v[lo];
    }
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// `paths` paths of a simulation from one seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Ensemble {
    pub paths: u64,
    pub seed: u64,
}

impl Ensemble {
    /// Rejects fewer than two paths (no variance, no interval).
    pub fn new(paths: u64, seed: u64) -> Result<Self, SdeError> {
        if paths < 2 {
            return Err(SdeError::invalid(
                "paths",
                paths,
                "an ensemble needs at least 2 paths for a variance",
            ));
        }
        Ok(Ensemble { paths, seed })
    }

    fn n_chunks(&self) -> u64 {
        self.paths.div_ceil(CHUNK as u64)
    }

    fn chunk_range(&self, c: u64) -> std::ops::Range<u64> {
        let start = c * CHUNK as u64;
        start..(start + CHUNK as u64).min(self.paths)
    }

    /// Runs every path and returns the streaming statistics.
    pub fn run<P: PathSimulation>(&self, sim: &P) -> EnsembleStats {
        self.run_with_progress(sim, &|_| {})
    }

    /// As [`Ensemble::run`], calling `progress(paths_done)` after each batch.
    ///
    /// With a [`crate::distribute::Distributor`] set, the chunks are split over processes as it
    /// decides; the result is the same bits. A distributor's failure panics with a
    /// [`crate::distribute::DistributeError`] payload.
    pub fn run_with_progress<P: PathSimulation>(
        &self,
        sim: &P,
        progress: &(dyn Fn(u64) + Sync),
    ) -> EnsembleStats {
        if let Some(d) = crate::distribute::distributor() {
            return self.run_distributed(sim, progress, false, &*d).0;
        }
        let (n_save, n_obs) = (sim.n_save(), sim.n_observables());
        let mut total = EnsembleStats::new(n_save, n_obs);
        self.for_batches(progress, EnsembleStats::bytes(n_save, n_obs), |chunks| {
            let parts: Vec<EnsembleStats> = chunks
                .into_par_iter()
                .map(|c| self.chunk_stats(sim, c))
                .collect();
            for part in &parts {
                total.merge(part);
            }
        });
        total
    }

    /// Runs every path, returning the statistics and every path's values (memory ∝ paths).
    /// Distributed (see [`Ensemble::run_with_progress`]), the values travel too: `O(paths)`.
    pub fn run_collect<P: PathSimulation>(
        &self,
        sim: &P,
        progress: &(dyn Fn(u64) + Sync),
    ) -> (EnsembleStats, PathValues) {
        if let Some(d) = crate::distribute::distributor() {
            let (stats, values) = self.run_distributed(sim, progress, true, &*d);
            let values = values.unwrap_or_else(|| PathValues::new(&stats, 0));
            return (stats, values);
        }
        let (n_save, n_obs) = (sim.n_save(), sim.n_observables());
        let mut total = EnsembleStats::new(n_save, n_obs);
        let mut values = PathValues::new(&total, self.paths);
        let bytes = EnsembleStats::bytes(n_save, n_obs) + CHUNK * (n_save * n_obs * 8 + 4);
        self.for_batches(progress, bytes, |chunks| {
            let parts: Vec<(EnsembleStats, Vec<f64>, Vec<u32>)> = chunks
                .into_par_iter()
                .map(|c| self.chunk_values(sim, c))
                .collect();
            for (part, vals, valid) in parts {
                total.merge(&part);
                values.values.extend_from_slice(&vals);
                values.valid.extend_from_slice(&valid);
            }
        });
        (total, values)
    }

    /// Statistics of chunk `c`.
    fn chunk_stats<P: PathSimulation>(&self, sim: &P, c: u64) -> EnsembleStats {
        let (n_save, n_obs) = (sim.n_save(), sim.n_observables());
        let mut acc = ChunkAcc::new(n_save, n_obs);
        let mut ws = sim.workspace();
        let mut out = vec![f64::NAN; n_save * n_obs];
        for p in self.chunk_range(c) {
            let mut rng = derive_stream(self.seed, p);
            let valid = sim
                .simulate(PathInput::new(p, &mut rng), &mut ws, &mut out)
                .min(n_save);
            acc.push_path(&out, valid, n_obs);
        }
        EnsembleStats::from_chunk(&acc, n_save, n_obs)
    }

    /// Statistics, values and valid save points of chunk `c`'s paths.
    fn chunk_values<P: PathSimulation>(
        &self,
        sim: &P,
        c: u64,
    ) -> (EnsembleStats, Vec<f64>, Vec<u32>) {
        let (n_save, n_obs) = (sim.n_save(), sim.n_observables());
        let range = self.chunk_range(c);
        let len = (range.end - range.start) as usize;
        let mut acc = ChunkAcc::new(n_save, n_obs);
        let mut ws = sim.workspace();
        let mut vals = vec![f64::NAN; len * n_save * n_obs];
        let mut valid = Vec::with_capacity(len);
        for (p, out) in range.zip(vals.chunks_exact_mut(n_save * n_obs)) {
            let mut rng = derive_stream(self.seed, p);
            let v = sim
                .simulate(PathInput::new(p, &mut rng), &mut ws, out)
                .min(n_save);
            acc.push_path(out, v, n_obs);
            valid.push(v as u32);
        }
        (EnsembleStats::from_chunk(&acc, n_save, n_obs), vals, valid)
    }

    /// The ensemble through the distributor `d` instead of the process's one (for tests of
    /// distributors, which run several in one process): chunks computed here or elsewhere
    /// arrive encoded (see [`encode_chunk`]) and fold in chunk order, as in the local run. The
    /// values come back with `collect`.
    pub fn run_distributed<P: PathSimulation>(
        &self,
        sim: &P,
        progress: &(dyn Fn(u64) + Sync),
        collect: bool,
        d: &dyn Distributor,
    ) -> (EnsembleStats, Option<PathValues>) {
        let (n_save, n_obs) = (sim.n_save(), sim.n_observables());
        let total = EnsembleStats::new(n_save, n_obs);
        let mut work = Work {
            ensemble: self,
            sim,
            call: EnsembleCall {
                paths: self.paths,
                seed: self.seed,
                n_save: n_save as u64,
                n_observables: n_obs as u64,
                collect,
            },
            values: collect.then(|| PathValues::new(&total, 0)),
            total,
            next_chunk: 0,
            counters0: sim.counters(),
            progress,
        };
        let call = work.call;
        // The distributor guarantees the coverage: the collective one checks the size of every
        // round, a replay checked that its shards tile every call, and a shard covers its block.
        let result = d.run(&call, &mut work);
        match result {
            Ok(counters) => {
                let totals: Vec<u64> = work
                    .counters0
                    .iter()
                    .zip(&counters)
                    .map(|(a, b)| a.wrapping_add(*b))
                    .collect();
                if !totals.is_empty() {
                    sim.set_counters(&totals);
                }
                (work.total, work.values)
            }
            Err(e) => std::panic::panic_any(e),
        }
    }

    /// Calls `f` with consecutive ranges of chunk indices, one batch of chunks at a time. A
    /// batch ends in a barrier (its results are merged, then `progress` is called) at which
    /// threads that finished early wait for the last chunk, so batches are as large as the
    /// memory of their results allows (`bytes_per_chunk` each, at most [`BATCH_BYTES`] per
    /// batch): between 4 and 64 chunks per thread.
    fn for_batches(
        &self,
        progress: &(dyn Fn(u64) + Sync),
        bytes_per_chunk: usize,
        mut f: impl FnMut(std::ops::Range<u64>),
    ) {
        let threads = rayon::current_num_threads().max(1);
        let by_memory = BATCH_BYTES / bytes_per_chunk.max(1);
        let batch = by_memory.clamp(4 * threads, 64 * threads) as u64;
        let n = self.n_chunks();
        let mut c = 0;
        while c < n {
            let end = (c + batch).min(n);
            f(c..end);
            progress((end * CHUNK as u64).min(self.paths));
            c = end;
        }
    }
}

/// Appends chunk statistics (and, with `values`, its paths' values) as words: paths, the
/// diverged counts, `(count, mean bits, m2 bits)` per accumulator, then each path's valid save
/// points and its values' bits. Floats travel as their bits, so the fold on the receiving side
/// is that of the local run.
fn encode_chunk(stats: &EnsembleStats, values: Option<(&[f64], &[u32])>, out: &mut Vec<u64>) {
    out.push(stats.paths);
    out.extend_from_slice(&stats.diverged);
    for w in &stats.stats {
        out.extend_from_slice(&[w.count, w.mean.to_bits(), w.m2.to_bits()]);
    }
    if let Some((vals, valid)) = values {
        out.extend(valid.iter().map(|&v| v as u64));
        out.extend(vals.iter().map(|v| v.to_bits()));
    }
}

/// The ensemble's side of a distributed call (see [`crate::distribute::ChunkWork`]).
struct Work<'a, P> {
    ensemble: &'a Ensemble,
    sim: &'a P,
    call: EnsembleCall,
    total: EnsembleStats,
    values: Option<PathValues>,
    /// The lowest chunk the next encoding may start at.
    next_chunk: u64,
    counters0: Vec<u64>,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<P: PathSimulation> ChunkWork for Work<'_, P> {
    fn compute(&mut self, chunks: std::ops::Range<u64>) -> Vec<u64> {
        let (e, sim, call) = (self.ensemble, self.sim, self.call);
        let collect = call.collect;
        let parts: Vec<Vec<u64>> = chunks
            .clone()
            .into_par_iter()
            .map(|c| {
                let mut buf = Vec::with_capacity(call.chunk_words(c));
                if collect {
                    let (stats, vals, valid) = e.chunk_values(sim, c);
                    encode_chunk(&stats, Some((&vals, &valid)), &mut buf);
                } else {
                    encode_chunk(&e.chunk_stats(sim, c), None, &mut buf);
                }
                buf
            })
            .collect();
        let mut out = Vec::with_capacity(self.call.words(chunks));
        for p in parts {
            out.extend_from_slice(&p);
        }
        out
    }

    fn absorb(&mut self, first: u64, encoded: &[u64]) -> Result<(), DistributeError> {
        let call = self.call;
        if first < self.next_chunk {
            return Err(DistributeError::failure(format!(
                "chunk {first} of an ensemble of {} paths (seed {}) arrived twice or out of order",
                call.paths, call.seed
            )));
        }
        self.next_chunk = first;
        let (n_save, cells) = (
            call.n_save as usize,
            (call.n_save * call.n_observables) as usize,
        );
        let mut rest = encoded;
        while !rest.is_empty() {
            let c = self.next_chunk;
            let words = call.chunk_words(c);
            if c >= call.n_chunks() || rest.len() < words || rest[0] != call.chunk_paths(c) {
                return Err(DistributeError::failure(format!(
                    "chunk {c} of an ensemble of {} paths (seed {}) arrived malformed",
                    call.paths, call.seed
                )));
            }
            let (chunk, tail) = rest.split_at(words);
            let t = &mut self.total;
            t.paths += chunk[0];
            for (a, b) in t.diverged.iter_mut().zip(&chunk[1..1 + n_save]) {
                *a += b;
            }
            let acc = &chunk[1 + n_save..1 + n_save + 3 * cells];
            for (a, w) in t.stats.iter_mut().zip(acc.chunks_exact(3)) {
                a.merge(&Welford {
                    count: w[0],
                    mean: f64::from_bits(w[1]),
                    m2: f64::from_bits(w[2]),
                });
            }
            if let Some(v) = &mut self.values {
                let p = chunk[0] as usize;
                let at = 1 + n_save + 3 * cells;
                v.valid.extend(chunk[at..at + p].iter().map(|&x| x as u32));
                v.values
                    .extend(chunk[at + p..].iter().map(|&x| f64::from_bits(x)));
            }
            self.next_chunk += 1;
            rest = tail;
        }
        Ok(())
    }

    fn local_counters(&self) -> Vec<u64> {
        self.sim
            .counters()
            .iter()
            .zip(&self.counters0)
            .map(|(now, before)| now.wrapping_sub(*before))
            .collect()
    }

    fn progress(&mut self, paths_done: u64) {
        (self.progress)(paths_done)
    }
}

/// How a path is declared diverged at a save point.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Divergence {
    /// A path whose state has `max_i |x_i|` above this is diverged (∞: only non-finite states).
    pub state_above: f64,
}

impl Default for Divergence {
    fn default() -> Self {
        Divergence {
            state_above: f64::INFINITY,
        }
    }
}

/// Observables of an SDE path: `n` values computed from `(t, x)` at each save point.
pub trait Observer: Sync {
    fn n(&self) -> usize;
    fn observe(&self, t: f64, x: &[f64], out: &mut [f64]);
}

/// Observes the state itself.
#[derive(Clone, Copy, Debug)]
pub struct StateObserver(pub usize);

impl Observer for StateObserver {
    fn n(&self) -> usize {
        self.0
    }
    #[inline]
    fn observe(&self, _t: f64, x: &[f64], out: &mut [f64]) {
        out.copy_from_slice(x)
    }
}

/// Observables from a closure `f(t, x, out)` writing `n` values.
#[derive(Clone, Copy, Debug)]
pub struct FnObserver<F> {
    pub n: usize,
    pub f: F,
}

impl<F: Fn(f64, &[f64], &mut [f64]) + Sync> Observer for FnObserver<F> {
    fn n(&self) -> usize {
        self.n
    }
    #[inline]
    fn observe(&self, t: f64, x: &[f64], out: &mut [f64]) {
        (self.f)(t, x, out)
    }
}

/// An ensemble problem for an SDE: a checked solver, a grid, an initial state, observables and
/// a divergence rule.
///
/// ```
/// use sde_core::*;
/// // E X_1 for dX = -X dt + dW, X_0 = 1, is e^{-1}.
/// let ou = SdeFn::new(1, NoiseShape::Diagonal,
///     |_t, x: &[f64], a: &mut [f64]| a[0] = -x[0],
///     |_t, _x: &[f64], b: &mut [f64]| b[0] = 1.0).unwrap();
/// let solver = Solver::new(&ou, EulerMaruyama, Gaussian).unwrap();
/// let paths = SdePaths::new(solver, Grid::new(0.0, 1.0, 200).unwrap().save_final(), &[1.0]).unwrap();
/// let stats = Ensemble::new(20_000, 1).unwrap().run(&paths);
/// let s = stats.summary(1, 0);
/// assert!((s.mean - (-1.0f64).exp()).abs() < 4.0 * s.std_err + 2e-3);
/// ```
pub struct SdePaths<S, Sch, I, O = StateObserver> {
    solver: Solver<S, Sch, I>,
    grid: Grid,
    x0: Vec<f64>,
    observer: O,
    divergence: Divergence,
}

impl<S: Sde, Sch: Scheme, I: Increments> SdePaths<S, Sch, I, StateObserver> {
    /// Observes the state; `x0` must have the problem's dimension.
    pub fn new(solver: Solver<S, Sch, I>, grid: Grid, x0: &[f64]) -> Result<Self, SdeError> {
        solver.check_state(x0)?;
        let d = x0.len();
        Ok(SdePaths {
            solver,
            grid,
            x0: x0.to_vec(),
            observer: StateObserver(d),
            divergence: Divergence::default(),
        })
    }
}

impl<S: Sde, Sch: Scheme, I: Increments, O: Observer> SdePaths<S, Sch, I, O> {
    /// Replaces the observables.
    pub fn observe<O2: Observer>(self, observer: O2) -> SdePaths<S, Sch, I, O2> {
        SdePaths {
            solver: self.solver,
            grid: self.grid,
            x0: self.x0,
            observer,
            divergence: self.divergence,
        }
    }

    /// Observables from a closure writing `n` values.
    pub fn observe_with<F>(self, n: usize, f: F) -> SdePaths<S, Sch, I, FnObserver<F>>
    where
        F: Fn(f64, &[f64], &mut [f64]) + Sync,
    {
        self.observe(FnObserver { n, f })
    }

    /// Counts a path as diverged once `max_i |x_i|` exceeds `threshold` at a save point.
    pub fn diverge_above(mut self, threshold: f64) -> Result<Self, SdeError> {
        if !(threshold > 0.0) {
            return Err(SdeError::invalid(
                "diverge_above",
                threshold,
                "must be positive",
            ));
        }
        self.divergence.state_above = threshold;
        Ok(self)
    }

    pub fn grid(&self) -> &Grid {
        &self.grid
    }
    pub fn solver(&self) -> &Solver<S, Sch, I> {
        &self.solver
    }
}

/// Buffers of one SDE path.
pub struct SdePathWorkspace<W> {
    solver: SolverWorkspace<W>,
    x: Vec<f64>,
}

impl<S: Sde, Sch: Scheme, I: Increments, O: Observer> PathSimulation for SdePaths<S, Sch, I, O> {
    type Workspace = SdePathWorkspace<Sch::Workspace>;

    fn workspace(&self) -> Self::Workspace {
        SdePathWorkspace {
            solver: self.solver.workspace(),
            x: self.x0.clone(),
        }
    }
    fn n_save(&self) -> usize {
        self.grid.n_save()
    }
    fn n_observables(&self) -> usize {
        self.observer.n()
    }
    #[inline]
    fn simulate(&self, path: PathInput<'_>, ws: &mut Self::Workspace, out: &mut [f64]) -> usize {
        let rng = path.rng;
        ws.x.copy_from_slice(&self.x0);
        let n_obs = self.observer.n();
        let limit = self.divergence.state_above;
        let observer = &self.observer;
        self.solver
            .solve(&mut ws.x, &self.grid, rng, &mut ws.solver, |s, t, x| {
                if !x.iter().all(|v| v.is_finite() && v.abs() <= limit) {
                    return false;
                }
                let o = &mut out[s * n_obs..(s + 1) * n_obs];
                observer.observe(t, x, o);
                o.iter().all(|v| v.is_finite())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunk accumulator folds a path's values with the bits of `Welford::push`, leaving
    /// NaN out per value and counting paths past `valid` as diverged; infinities go through
    /// the same arithmetic as in `push`.
    #[test]
    fn chunk_accumulator_has_the_bits_of_welford_push() {
        let (n_save, n_obs) = (5, 3);
        let mut acc = ChunkAcc::new(n_save, n_obs);
        let mut want = vec![Welford::default(); n_save * n_obs];
        let mut diverged = vec![0u64; n_save];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for p in 0..CHUNK {
            let values: Vec<f64> = (0..n_save * n_obs)
                .map(|i| {
                    state = crate::rng::splitmix64(state);
                    match (state >> 59, i) {
                        _ if p == 50 && i == 7 => f64::INFINITY,
                        (0, _) => f64::NAN,
                        _ => (state >> 11) as f64 * 2f64.powi(-50) - 3.0,
                    }
                })
                .collect();
            let valid = if p % 7 == 3 { p % n_save } else { n_save };
            acc.push_path(&values, valid, n_obs);
            for (w, v) in want[..valid * n_obs].iter_mut().zip(&values) {
                if !v.is_nan() {
                    w.push(*v);
                }
            }
            for d in &mut diverged[valid..] {
                *d += 1;
            }
        }
        let got = EnsembleStats::from_chunk(&acc, n_save, n_obs);
        assert_eq!(got.paths, CHUNK as u64);
        assert_eq!(got.diverged, diverged);
        for (g, w) in got.stats.iter().zip(&want) {
            assert_eq!(g.count, w.count);
            assert_eq!(g.mean.to_bits(), w.mean.to_bits(), "{g:?} vs {w:?}");
            assert_eq!(g.m2.to_bits(), w.m2.to_bits(), "{g:?} vs {w:?}");
        }
        assert!(want.iter().any(|w| !w.mean.is_finite()));
        // The nine paths cut short (p = 3, 10, …, 59) all miss the last save point.
        assert!(want.iter().any(|w| w.count <= CHUNK as u64 - 9));
    }
}
