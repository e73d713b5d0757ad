//! Distributed ensembles: K processes (threads standing in for MPI ranks, over an in-memory
//! all-gather) and N recorded shards replayed must fold to the bits of one local run, with the
//! simulation's side counters summed; a replay of another run must fail.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use sde_core::distribute::{
    Collective, CollectiveDistributor, DistributeError, Distributor, Recorder, Replayer,
};
use sde_core::testing::assert_same_bits;
use sde_core::*;

/// Every field of two results, bit for bit (NaN included).
fn assert_same_results(
    a: &(EnsembleStats, Option<PathValues>),
    b: &(EnsembleStats, Option<PathValues>),
) {
    assert_same_bits(&a.0, &b.0);
    match (&a.1, &b.1) {
        (Some(u), Some(v)) => {
            assert_eq!(u.valid, v.valid);
            let bits = |w: &PathValues| w.values.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(u), bits(v));
        }
        (None, None) => {}
        _ => panic!("values on one side only"),
    }
}

/// A random walk with Student-like jumps that diverges past 6, counting the normals it draws in
/// a side counter (as the comparison crate's ladders do): paths draw different numbers of them.
struct Walk {
    steps: usize,
    drawn: AtomicU64,
}

impl PathSimulation for Walk {
    type Workspace = ();
    fn workspace(&self) {}
    fn n_save(&self) -> usize {
        self.steps + 1
    }
    fn n_observables(&self) -> usize {
        2
    }
    fn simulate(&self, path: PathInput<'_>, _ws: &mut (), out: &mut [f64]) -> usize {
        let rng = path.rng;
        use rand::RngExt;
        let mut x = 0.0f64;
        let mut drawn = 0;
        out[0] = 0.0;
        out[1] = f64::NAN; // missing for this observable only
        for s in 1..=self.steps {
            let u: f64 = rng.random();
            drawn += 1;
            x += (u - 0.5) / (1.0 - u).max(1e-3).sqrt();
            if x.abs() > 6.0 {
                self.drawn.fetch_add(drawn, Ordering::Relaxed);
                return s;
            }
            out[2 * s] = x;
            out[2 * s + 1] = x * x;
        }
        self.drawn.fetch_add(drawn, Ordering::Relaxed);
        self.steps + 1
    }
    fn counters(&self) -> Vec<u64> {
        vec![self.drawn.load(Ordering::Relaxed), 7]
    }
    fn set_counters(&self, totals: &[u64]) {
        self.drawn.store(totals[0], Ordering::Relaxed);
    }
}

fn walk() -> Walk {
    Walk {
        steps: 12,
        drawn: AtomicU64::new(5),
    }
}

/// K ranks in one process: an all-gather through shared slots and two barriers.
struct Threads {
    rank: u64,
    shared: Arc<Shared>,
}

struct Shared {
    size: u64,
    slots: Mutex<Vec<Vec<u64>>>,
    barrier: Barrier,
}

impl Collective for Threads {
    fn rank(&self) -> u64 {
        self.rank
    }
    fn size(&self) -> u64 {
        self.shared.size
    }
    fn all_gather(&self, mine: &[u64]) -> Result<Vec<u64>, DistributeError> {
        self.shared.slots.lock().unwrap()[self.rank as usize] = mine.to_vec();
        self.shared.barrier.wait();
        let all = self.shared.slots.lock().unwrap().concat();
        self.shared.barrier.wait();
        Ok(all)
    }
    fn all_sum(&self, mine: &[u64]) -> Result<Vec<u64>, DistributeError> {
        let all = self.all_gather(mine)?;
        let n = mine.len();
        Ok((0..n)
            .map(|i| (0..self.shared.size as usize).map(|r| all[r * n + i]).sum())
            .collect())
    }
}

type Outcome = ((EnsembleStats, Option<PathValues>), u64);

fn local(e: Ensemble, collect: bool) -> Outcome {
    let sim = walk();
    let r = if collect {
        let (s, v) = e.run_collect(&sim, &|_| {});
        (s, Some(v))
    } else {
        (e.run(&sim), None)
    };
    (r, sim.drawn.load(Ordering::Relaxed))
}

fn through(e: Ensemble, collect: bool, d: &dyn Distributor) -> Outcome {
    let sim = walk();
    let r = e.run_distributed(&sim, &|_| {}, collect, d);
    (r, sim.drawn.load(Ordering::Relaxed))
}

fn ranks(e: Ensemble, collect: bool, size: u64) -> Vec<Outcome> {
    let shared = Arc::new(Shared {
        size,
        slots: Mutex::new(vec![Vec::new(); size as usize]),
        barrier: Barrier::new(size as usize),
    });
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..size)
            .map(|rank| {
                let comm = Threads {
                    rank,
                    shared: shared.clone(),
                };
                scope.spawn(move || through(e, collect, &CollectiveDistributor { comm }))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Path counts: below one chunk, not a multiple of the chunk, and more chunks than a round.
const PATHS: [u64; 3] = [37, 1000, 70_001];

#[test]
fn every_rank_folds_the_bits_of_one_process() {
    for paths in PATHS {
        for collect in [false, true] {
            let e = Ensemble::new(paths, 11).unwrap();
            let (one, drawn) = local(e, collect);
            for size in 1..=3 {
                for (rank, (r, d)) in ranks(e, collect, size).iter().enumerate() {
                    assert_same_results(&one, r);
                    assert_eq!(*d, drawn, "{paths} paths, rank {rank} of {size}");
                }
            }
        }
    }
}

fn record(e: Ensemble, collect: bool, shards: u64) -> Vec<Vec<sde_core::distribute::RecordedCall>> {
    (0..shards)
        .map(|i| {
            let rec = Recorder::new(i, shards);
            // Two calls per shard: the replay serves them in order.
            through(e, collect, &rec);
            through(
                Ensemble::new(e.paths / 2 + 2, e.seed + 1).unwrap(),
                collect,
                &rec,
            );
            rec.take()
        })
        .collect()
}

#[test]
fn replayed_shards_fold_the_bits_of_one_process() {
    for paths in PATHS {
        for collect in [false, true] {
            let e = Ensemble::new(paths, 5).unwrap();
            let e2 = Ensemble::new(paths / 2 + 2, 6).unwrap();
            for shards in [1, 3, 4] {
                let replay = Replayer::new(record(e, collect, shards)).unwrap();
                assert_eq!(replay.remaining(), 2);
                let (r, d) = through(e, collect, &replay);
                let (one, drawn) = local(e, collect);
                assert_same_results(&one, &r);
                assert_eq!(d, drawn, "{paths} paths, {shards} shards");
                let (r2, d2) = through(e2, collect, &replay);
                let (one2, drawn2) = local(e2, collect);
                assert_same_results(&one2, &r2);
                assert_eq!(d2, drawn2);
                assert_eq!(replay.remaining(), 0);
            }
        }
    }
}

/// The payload of a distributor's failure.
fn failure(f: impl FnOnce() + std::panic::UnwindSafe) -> DistributeError {
    let e = std::panic::catch_unwind(f).expect_err("must fail");
    e.downcast::<DistributeError>()
        .map(|b| *b)
        .expect("a DistributeError payload")
}

#[test]
fn a_replay_of_another_run_fails() {
    let e = Ensemble::new(1000, 5).unwrap();
    let shards = record(e, false, 3);
    // Another seed.
    let replay = Replayer::new(shards.clone()).unwrap();
    let err = failure(|| {
        through(Ensemble::new(1000, 6).unwrap(), false, &replay);
    });
    assert_eq!(err.exit_code, 2);
    assert!(err.message.contains("other decisions"), "{}", err.message);
    // One call more than recorded.
    let replay = Replayer::new(shards.clone()).unwrap();
    through(e, false, &replay);
    through(Ensemble::new(502, 6).unwrap(), false, &replay);
    let err = failure(|| {
        through(e, false, &replay);
    });
    assert!(err.message.contains("recorded only 2"), "{}", err.message);
    // Shards of different splits or a missing one.
    let mut mixed = shards.clone();
    mixed[1] = record(e, false, 4).remove(1);
    assert!(Replayer::new(mixed).is_err());
    let missing: Vec<_> = shards.iter().take(2).cloned().collect();
    let err = Replayer::new(missing).err().expect("must fail");
    assert_eq!(err.exit_code, 2);
    let mut truncated = shards;
    truncated[2][0].data.pop();
    assert!(Replayer::new(truncated).is_err());
}

#[test]
fn a_gather_of_the_wrong_size_fails() {
    /// A lone process that believes it is one of two: it gathers only its own share.
    struct Lonely;
    impl Collective for Lonely {
        fn rank(&self) -> u64 {
            0
        }
        fn size(&self) -> u64 {
            2
        }
        fn all_gather(&self, mine: &[u64]) -> Result<Vec<u64>, DistributeError> {
            Ok(mine.to_vec())
        }
        fn all_sum(&self, mine: &[u64]) -> Result<Vec<u64>, DistributeError> {
            Ok(mine.to_vec())
        }
    }
    let d = CollectiveDistributor { comm: Lonely };
    let err = failure(|| {
        through(Ensemble::new(1000, 1).unwrap(), false, &d);
    });
    assert_eq!(err.exit_code, 1);
}
