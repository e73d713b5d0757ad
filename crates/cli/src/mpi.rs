//! `mpirun -np K sdelab ...` (cargo feature `mpi`, through rsmpi and the system's MPI).
//!
//! MPI is initialized only when the process was started by an MPI launcher (`mpirun`, `srun`,
//! hydra): a plain `sdelab` of an MPI build runs as the default build does. Every rank runs the
//! whole command; each ensemble is split over the ranks by
//! [`sde_core::distribute::CollectiveDistributor`], whose all-gather gives every rank every
//! chunk's statistics, so every rank folds the result of one process and takes the same
//! decisions. Rank 0 writes the folder and shows progress; the others write into a scratch folder
//! that is removed, with stdout muted.

use std::sync::{Arc, Mutex};

use mpi::datatype::PartitionMut;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;
use sde_core::distribute::{Collective, CollectiveDistributor, DistributeError, Distributor};

use crate::error::CliError;
use crate::Ranks;

/// Environment variables set by the launchers of Open MPI, MPICH/hydra, PMIx and Slurm's PMI.
const LAUNCHER_VARIABLES: [&str; 4] = [
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
    "PMIX_RANK",
    "MPI_LOCALNRANKS",
];

/// The MPI environment of this process; MPI is finalized when it is dropped.
pub struct World {
    _universe: mpi::environment::Universe,
    ranks: Ranks,
}

static COMM: Mutex<Option<Comm>> = Mutex::new(None);

/// The world communicator. MPI is initialized with `MPI_THREAD_SERIALIZED` and every call goes
/// through the mutex around it, so it may be used from whichever thread runs an ensemble.
struct Comm(SimpleCommunicator);

// SAFETY: the communicator is a handle to MPI_COMM_WORLD; MPI was initialized with
// MPI_THREAD_SERIALIZED and every use holds the `COMM` mutex, so calls never overlap.
unsafe impl Send for Comm {}

impl World {
    /// Initializes MPI if an MPI launcher started this process; `None` otherwise.
    pub fn init_if_launched() -> Result<Option<World>, CliError> {
        if !LAUNCHER_VARIABLES
            .iter()
            .any(|v| std::env::var_os(v).is_some())
        {
            return Ok(None);
        }
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| CliError::Failure("cannot initialize MPI".into()))?;
        let world = universe.world();
        let ranks = Ranks {
            rank: world.rank() as u64,
            size: world.size() as u64,
        };
        *COMM.lock().unwrap_or_else(|e| e.into_inner()) = Some(Comm(world));
        Ok(Some(World {
            _universe: universe,
            ranks,
        }))
    }

    pub fn ranks(&self) -> Ranks {
        self.ranks
    }

    /// Ends every rank after a failure during the work: the others may be waiting in a
    /// collective for this one. Rank 0 prints the message as a plain run does and aborts with
    /// the error's code (2 for bad input). Bad input on another rank is the input rank 0 checks
    /// too: that rank leaves quietly with 2. Any other failure elsewhere is printed with its rank
    /// and aborts with 1.
    pub fn abort(&self, e: &CliError) -> ! {
        let code = if self.ranks.rank == 0 {
            eprintln!("error: {e}");
            e.exit_code()
        } else if e.exit_code() == CliError::EXIT_BAD_INPUT {
            std::process::exit(CliError::EXIT_BAD_INPUT as i32);
        } else {
            eprintln!(
                "error (rank {} of {}): {e}",
                self.ranks.rank, self.ranks.size
            );
            CliError::EXIT_FAILURE
        };
        let _ = std::io::Write::flush(&mut std::io::stderr());
        let comm = COMM.lock().unwrap_or_else(|e| e.into_inner());
        match comm.as_ref() {
            Some(c) => c.0.abort(code as i32),
            None => std::process::exit(code as i32),
        }
    }
}

/// The collective operations over `MPI_COMM_WORLD`.
struct WorldCollective {
    ranks: Ranks,
}

fn with_comm<T>(f: impl FnOnce(&SimpleCommunicator) -> T) -> Result<T, DistributeError> {
    let guard = COMM.lock().unwrap_or_else(|e| e.into_inner());
    let comm = guard
        .as_ref()
        .ok_or_else(|| DistributeError::failure("MPI is not initialized"))?;
    Ok(f(&comm.0))
}

fn count(n: u64) -> Result<Count, DistributeError> {
    Count::try_from(n).map_err(|_| {
        DistributeError::failure(format!(
            "a gather of {n} words is beyond MPI's 32-bit counts"
        ))
    })
}

impl Collective for WorldCollective {
    fn rank(&self) -> u64 {
        self.ranks.rank
    }
    fn size(&self) -> u64 {
        self.ranks.size
    }
    fn all_gather(&self, mine: &[u64]) -> Result<Vec<u64>, DistributeError> {
        let size = self.ranks.size as usize;
        with_comm(|w| {
            let n = mine.len() as u64;
            let mut counts = vec![0u64; size];
            w.all_gather_into(&n, &mut counts[..]);
            let total: u64 = counts.iter().sum();
            let mut displs = Vec::with_capacity(size);
            let mut at = 0u64;
            for &c in &counts {
                displs.push(count(at)?);
                at += c;
            }
            let counts: Vec<Count> = counts.iter().map(|&c| count(c)).collect::<Result<_, _>>()?;
            count(total)?;
            let mut all = vec![0u64; total as usize];
            {
                let mut partition = PartitionMut::new(&mut all[..], counts, displs);
                w.all_gather_varcount_into(mine, &mut partition);
            }
            Ok(all)
        })?
    }
    fn all_sum(&self, mine: &[u64]) -> Result<Vec<u64>, DistributeError> {
        with_comm(|w| {
            let mut out = vec![0u64; mine.len()];
            if !mine.is_empty() {
                w.all_reduce_into(mine, &mut out[..], mpi::collective::SystemOperation::sum());
            }
            out
        })
    }
}

/// The distributor of this MPI run (after [`World::init_if_launched`]).
pub fn distributor() -> Result<Arc<dyn Distributor>, CliError> {
    let ranks = {
        let guard = COMM.lock().unwrap_or_else(|e| e.into_inner());
        let c = guard
            .as_ref()
            .ok_or_else(|| CliError::Failure("MPI is not initialized".into()))?;
        Ranks {
            rank: c.0.rank() as u64,
            size: c.0.size() as u64,
        }
    };
    Ok(Arc::new(CollectiveDistributor {
        comm: WorldCollective { ranks },
    }))
}
