//! Ensembles split over processes: MPI ranks, or the shards of a job array.
//!
//! An ensemble's result is a left fold of its chunks' statistics in chunk order (see
//! [`crate::ensemble`]), and a chunk depends on `(seed, chunk index)` alone. A process may
//! therefore compute any subset of the chunks, provided every chunk's statistics reach the
//! process that folds them, in order: the fold is then bit for bit that of one process. Welford
//! merges are not associative in floating point, so partial folds cannot be combined instead;
//! what travels is every chunk's statistics, `O(chunks × save points × observables)` words, never
//! the paths.
//!
//! A [`Distributor`] is set once per process ([`set_distributor`]); without one, ensembles run
//! locally through the unchanged code path. [`CollectiveDistributor`] serves MPI-like runs: in
//! rounds, each process computes its share of the round's chunks and an all-gather hands every
//! process all of them, so every process folds the same result and takes the same adaptive
//! decisions. [`Recorder`] and [`Replayer`] serve job arrays: a shard computes its block of every
//! ensemble and records it; the merge replays the recorded chunks in place of computing them.
//!
//! The ensemble API returns no `Result`, so a distributor's failure (a replay that does not match
//! the run, a broken communicator) unwinds as a panic whose payload is a [`DistributeError`]; the
//! command line catches it and exits with its code.

use std::ops::Range;
use std::sync::{Arc, Mutex, RwLock};

use crate::ensemble::CHUNK;

/// One ensemble call as a distributor sees it: what a replay checks against the call it
/// recorded, and what sizes the chunk encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnsembleCall {
    pub paths: u64,
    pub seed: u64,
    pub n_save: u64,
    pub n_observables: u64,
    /// Every path's values are kept (`Ensemble::run_collect`) and travel with the statistics.
    pub collect: bool,
}

impl EnsembleCall {
    pub fn n_chunks(&self) -> u64 {
        self.paths.div_ceil(CHUNK as u64)
    }

    /// Paths of chunk `c` (the last chunk may be short).
    pub fn chunk_paths(&self, c: u64) -> u64 {
        let start = c * CHUNK as u64;
        (start + CHUNK as u64).min(self.paths) - start
    }

    /// Words of chunk `c`'s encoding (see [`crate::ensemble`]): paths, the diverged counts, three
    /// words per accumulator, then with `collect` each path's valid count and values.
    pub fn chunk_words(&self, c: u64) -> usize {
        let cells = (self.n_save * self.n_observables) as usize;
        let stats = 1 + self.n_save as usize + 3 * cells;
        if self.collect {
            let p = self.chunk_paths(c) as usize;
            stats + p * (1 + cells)
        } else {
            stats
        }
    }

    /// Words of the encodings of the chunks in `chunks`.
    pub fn words(&self, chunks: Range<u64>) -> usize {
        chunks.map(|c| self.chunk_words(c)).sum()
    }
}

/// Why a distributed ensemble cannot go on. `exit_code` follows the command line's convention:
/// 2 for input that does not fit the run (shards of another config), 1 for anything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistributeError {
    pub exit_code: u8,
    pub message: String,
}

impl DistributeError {
    pub fn bad_input(message: impl Into<String>) -> Self {
        DistributeError {
            exit_code: 2,
            message: message.into(),
        }
    }
    pub fn failure(message: impl Into<String>) -> Self {
        DistributeError {
            exit_code: 1,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for DistributeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DistributeError {}

/// The ensemble's side of a distributed call.
pub trait ChunkWork {
    /// Computes `chunks` on this process's threads and returns their encodings, in chunk order.
    fn compute(&mut self, chunks: Range<u64>) -> Vec<u64>;
    /// Folds the encoded chunks `first, first + 1, …` into the result. Across the calls of one
    /// ensemble the chunks must arrive in increasing order, each once; a shard skips the chunks
    /// of the others.
    fn absorb(&mut self, first: u64, encoded: &[u64]) -> Result<(), DistributeError>;
    /// What the simulation's side counters grew by in this process since the call began.
    fn local_counters(&self) -> Vec<u64>;
    /// Reports that the first `paths_done` paths have been folded.
    fn progress(&mut self, paths_done: u64);
}

/// Decides which chunks this process computes and where the others come from.
pub trait Distributor: Send + Sync {
    /// Runs one ensemble call through `work`; returns the side counters' growth summed over
    /// every process (they are integer sums, so the order does not matter).
    fn run(
        &self,
        call: &EnsembleCall,
        work: &mut dyn ChunkWork,
    ) -> Result<Vec<u64>, DistributeError>;
}

static DISTRIBUTOR: RwLock<Option<Arc<dyn Distributor>>> = RwLock::new(None);

/// Sets (or with `None` clears) the distributor every ensemble of this process goes through.
/// Meant to be called once at start-up, before any ensemble runs.
pub fn set_distributor(d: Option<Arc<dyn Distributor>>) {
    *DISTRIBUTOR.write().unwrap_or_else(|e| e.into_inner()) = d;
}

/// The distributor set by [`set_distributor`], if any.
pub fn distributor() -> Option<Arc<dyn Distributor>> {
    DISTRIBUTOR
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Share `part` of `parts` of a range: contiguous blocks whose sizes differ by at most one.
pub fn share(range: Range<u64>, part: u64, parts: u64) -> Range<u64> {
    let len = (range.end - range.start) as u128;
    let at = |k: u64| range.start + (len * k as u128 / parts as u128) as u64;
    at(part)..at(part + 1)
}

/// Collective operations among the processes of one run (MPI ranks), all called by every
/// process in the same order.
pub trait Collective: Send + Sync {
    fn rank(&self) -> u64;
    fn size(&self) -> u64;
    /// Every process's `mine`, concatenated in rank order.
    fn all_gather(&self, mine: &[u64]) -> Result<Vec<u64>, DistributeError>;
    /// The element-wise sum of every process's `mine` (all of one length).
    fn all_sum(&self, mine: &[u64]) -> Result<Vec<u64>, DistributeError>;
}

/// Memory the gathered chunks of one round may take on every process.
const ROUND_BYTES: usize = 256 << 20;

/// Every process computes its share of each round and receives all of the round's chunks.
pub struct CollectiveDistributor<C> {
    pub comm: C,
}

impl<C: Collective> CollectiveDistributor<C> {
    /// Chunks per process and round: a function of the call and the number of processes only,
    /// so every process cuts the same rounds whatever its thread count.
    fn per_process(&self, call: &EnsembleCall) -> u64 {
        let bytes = 8 * call.chunk_words(0).max(1);
        (ROUND_BYTES / (bytes * self.comm.size() as usize)).clamp(16, 4096) as u64
    }
}

impl<C: Collective> Distributor for CollectiveDistributor<C> {
    fn run(
        &self,
        call: &EnsembleCall,
        work: &mut dyn ChunkWork,
    ) -> Result<Vec<u64>, DistributeError> {
        let (rank, size) = (self.comm.rank(), self.comm.size());
        let n = call.n_chunks();
        let round = self.per_process(call) * size;
        let mut c = 0;
        while c < n {
            let end = (c + round).min(n);
            let mine = work.compute(share(c..end, rank, size));
            let all = self.comm.all_gather(&mine)?;
            // A rank that computed other chunks than the rest (another call) shows up as a size
            // mismatch here, not as a wrong fold.
            if all.len() != call.words(c..end) {
                return Err(DistributeError::failure(format!(
                    "the processes disagree on an ensemble of {} paths (seed {}): gathered {} \
                     words for chunks {c}..{end}, expected {}",
                    call.paths,
                    call.seed,
                    all.len(),
                    call.words(c..end)
                )));
            }
            work.absorb(c, &all)?;
            work.progress((end * CHUNK as u64).min(call.paths));
            c = end;
        }
        self.comm.all_sum(&work.local_counters())
    }
}

/// One ensemble call of a shard: its block of chunks, their encodings and the side counters.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedCall {
    pub call: EnsembleCall,
    pub chunks: Range<u64>,
    pub data: Vec<u64>,
    pub counters: Vec<u64>,
}

/// Shard `shard` of `shards`: computes its block of every ensemble call and keeps it. The
/// ensemble's result on this process covers the block only (it is not the run's result).
pub struct Recorder {
    pub shard: u64,
    pub shards: u64,
    calls: Mutex<Vec<RecordedCall>>,
}

impl Recorder {
    pub fn new(shard: u64, shards: u64) -> Self {
        Recorder {
            shard,
            shards,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The calls recorded so far, in call order.
    pub fn take(&self) -> Vec<RecordedCall> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Chunks a shard computes between two progress reports.
const RECORD_BATCH: u64 = 1024;

impl Distributor for Recorder {
    fn run(
        &self,
        call: &EnsembleCall,
        work: &mut dyn ChunkWork,
    ) -> Result<Vec<u64>, DistributeError> {
        let block = share(0..call.n_chunks(), self.shard, self.shards);
        let mut data = Vec::with_capacity(call.words(block.clone()));
        let mut c = block.start;
        while c < block.end {
            let end = (c + RECORD_BATCH).min(block.end);
            let part = work.compute(c..end);
            work.absorb(c, &part)?;
            data.extend_from_slice(&part);
            work.progress(((end - block.start) * CHUNK as u64).min(call.paths));
            c = end;
        }
        let counters = work.local_counters();
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(RecordedCall {
                call: *call,
                chunks: block,
                data,
                counters: counters.clone(),
            });
        Ok(counters)
    }
}

/// Serves every ensemble call from the records of shards `0..N`, in call order, computing
/// nothing. Each call must match the recorded one (paths, seed, shape), so a run that takes
/// another turn than the shards did stops with an error instead of folding foreign chunks.
pub struct Replayer {
    /// `shards[i]` holds shard `i`'s calls in call order.
    shards: Vec<Vec<RecordedCall>>,
    next: Mutex<usize>,
}

impl Replayer {
    /// Checks that every shard recorded the same calls and that their blocks tile each call's
    /// chunks in shard order.
    pub fn new(shards: Vec<Vec<RecordedCall>>) -> Result<Self, DistributeError> {
        let Some(first) = shards.first() else {
            return Err(DistributeError::bad_input("no shards to merge"));
        };
        let n = shards.len() as u64;
        for (i, s) in shards.iter().enumerate() {
            if s.len() != first.len() {
                return Err(DistributeError::bad_input(format!(
                    "shard {i}/{n} recorded {} ensembles, shard 0/{n} {}: they come from \
                     different runs",
                    s.len(),
                    first.len()
                )));
            }
        }
        for k in 0..first.len() {
            let call = first[k].call;
            for (i, s) in shards.iter().enumerate() {
                let r = &s[k];
                let expected = share(0..call.n_chunks(), i as u64, n);
                if r.call != call || r.chunks != expected {
                    return Err(DistributeError::bad_input(format!(
                        "ensemble {k} of shard {i}/{n} ({} paths, seed {}, chunks {:?}) does not \
                         match shard 0/{n} ({} paths, seed {}; chunks {expected:?} expected)",
                        r.call.paths, r.call.seed, r.chunks, call.paths, call.seed
                    )));
                }
                if r.data.len() != call.words(r.chunks.clone()) {
                    return Err(DistributeError::bad_input(format!(
                        "ensemble {k} of shard {i}/{n}: {} words of statistics, {} expected \
                         (truncated or corrupt shard)",
                        r.data.len(),
                        call.words(r.chunks.clone())
                    )));
                }
                if r.counters.len() != first[k].counters.len() {
                    return Err(DistributeError::bad_input(format!(
                        "ensemble {k} of shard {i}/{n}: {} side counters, shard 0/{n} has {}",
                        r.counters.len(),
                        first[k].counters.len()
                    )));
                }
            }
        }
        Ok(Replayer {
            shards,
            next: Mutex::new(0),
        })
    }

    /// Recorded calls not replayed yet.
    pub fn remaining(&self) -> usize {
        let next = *self.next.lock().unwrap_or_else(|e| e.into_inner());
        self.shards[0].len().saturating_sub(next)
    }
}

impl Distributor for Replayer {
    fn run(
        &self,
        call: &EnsembleCall,
        work: &mut dyn ChunkWork,
    ) -> Result<Vec<u64>, DistributeError> {
        let k = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let k = *next;
            *next += 1;
            k
        };
        let recorded = self.shards[0].get(k).ok_or_else(|| {
            DistributeError::bad_input(format!(
                "the merged run asks for ensemble {k}, but the shards recorded only {}: they come \
                 from a run that took other decisions",
                self.shards[0].len()
            ))
        })?;
        if recorded.call != *call {
            return Err(DistributeError::bad_input(format!(
                "ensemble {k}: the merged run asks for {call:?}, the shards recorded {:?}: they \
                 come from a run that took other decisions",
                recorded.call
            )));
        }
        let mut counters = vec![0u64; recorded.counters.len()];
        for s in &self.shards {
            let r = &s[k];
            work.absorb(r.chunks.start, &r.data)?;
            work.progress((r.chunks.end * CHUNK as u64).min(call.paths));
            for (t, v) in counters.iter_mut().zip(&r.counters) {
                *t = t.wrapping_add(*v);
            }
        }
        Ok(counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_tile_the_range() {
        for parts in 1..9u64 {
            for len in [0u64, 1, 5, 64, 1000] {
                let mut at = 7;
                for p in 0..parts {
                    let s = share(7..7 + len, p, parts);
                    assert_eq!(s.start, at);
                    assert!(s.end - s.start <= len / parts + 1);
                    at = s.end;
                }
                assert_eq!(at, 7 + len);
            }
        }
    }

    #[test]
    fn chunk_words_count_the_short_last_chunk() {
        let call = EnsembleCall {
            paths: 130,
            seed: 1,
            n_save: 2,
            n_observables: 3,
            collect: true,
        };
        assert_eq!(call.n_chunks(), 3);
        assert_eq!(call.chunk_paths(2), 2);
        assert_eq!(call.chunk_words(0), 1 + 2 + 18 + 64 * 7);
        assert_eq!(call.chunk_words(2), 1 + 2 + 18 + 2 * 7);
    }
}
