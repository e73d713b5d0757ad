//! The one rule by which every random stream of this crate is seeded.
//!
//! A stream's seed is the master seed followed by a path of indices, each step one
//! [`derive_key`]: grid coordinates ([`Stream::at`]: the learning rate's index, the x0 scale's
//! index, a substep count) and, last, the [`Role`] of the ensemble. Two streams share noise only
//! if their paths are equal, so sharing is decided here, by the roles, and nowhere else:
//!
//! | simulation | path from the master seed |
//! |---|---|
//! | study, learning rate `i` | `at(i)`, then `Discrete` or `Ladder` (every model reads the same ladder noise) |
//! | trajectories | `Discrete`, or `Model(m)` |
//! | stability, scale `s`, learning rate `i` | `at(s).at(i)`, then `Discrete`, or `Model(m)` and `at(substeps)` |
//! | Figure 1, substep check | `SubstepCheck(m)` (independent of the trajectory's `Model(m)`) |
//! | study, second stage (a rerun learning rate `i`) | the same paths from [`rerun_seed`]`(seed)` instead of the master seed |

use models::sde::SdeModel;
use sde_core::derive_key;

/// What an ensemble is for: the last step of its stream's path (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The discrete optimizer alone.
    Discrete,
    /// An SDE model's own ensemble (trajectories, stability points).
    Model(SdeModel),
    /// The SDE ladder of a study, coupled or not: every model reads the same noise (the discrete
    /// side of a coupled ladder is then the same for every model).
    Ladder,
    /// A rerun of a model at twice the substeps, independent of its first run (the two are
    /// compared as independent samples).
    SubstepCheck(SdeModel),
}

impl Role {
    /// The index of the role's step. Fixed: changing one changes every published result.
    fn index(self) -> u64 {
        match self {
            Role::Discrete => 0,
            Role::Model(m) => 1 + model_index(m),
            Role::Ladder => 20,
            Role::SubstepCheck(m) => 1000 + model_index(m),
        }
    }
}

fn model_index(m: SdeModel) -> u64 {
    match m {
        SdeModel::FirstOrder => 0,
        SdeModel::SecondOrder => 1,
        SdeModel::Stability => 2,
    }
}

/// A node of the seed tree: the master seed and the path walked so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stream(u64);

impl Stream {
    pub fn master(seed: u64) -> Self {
        Stream(seed)
    }

    /// One step down a grid coordinate.
    pub fn at(self, index: usize) -> Self {
        Stream(derive_key(self.0, index as u64))
    }

    /// The step of an ensemble's role.
    pub fn role(self, role: Role) -> Self {
        Stream(derive_key(self.0, role.index()))
    }

    /// The seed an [`sde_core::Ensemble`] takes.
    pub fn seed(self) -> u64 {
        self.0
    }
}

/// The step from the master seed to the study's second stage: a grid index no learning rate
/// reaches (the limit on learning rates is far below it). Fixed, like the roles' indices.
const RERUN_INDEX: u64 = 0x5345_434f_4e44; // "SECOND"

/// The master seed of a study's second stage (its rerun learning rates): one step off the seed
/// tree's root, so every stream below it is independent of the first stage's.
pub fn rerun_seed(seed: u64) -> u64 {
    derive_key(seed, RERUN_INDEX)
}

/// The seed of a study's ensemble at learning rate `eta_index`.
pub fn stream_seed(seed: u64, eta_index: usize, role: Role) -> u64 {
    Stream::master(seed).at(eta_index).role(role).seed()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The roles' indices are what the published results were seeded with: the explicit
    /// `derive_key` chains of before the rule, written out.
    #[test]
    fn paths_are_the_derive_key_chains_of_the_published_results() {
        let s = 12345;
        assert_eq!(
            stream_seed(s, 3, Role::Discrete),
            derive_key(derive_key(s, 3), 0)
        );
        assert_eq!(
            stream_seed(s, 3, Role::Ladder),
            derive_key(derive_key(s, 3), 20)
        );
        for (m, i) in [
            (SdeModel::FirstOrder, 0),
            (SdeModel::SecondOrder, 1),
            (SdeModel::Stability, 2),
        ] {
            let model = Stream::master(s).role(Role::Model(m)).seed();
            assert_eq!(model, derive_key(s, 1 + i));
            let check = Stream::master(s).role(Role::SubstepCheck(m)).seed();
            assert_eq!(check, derive_key(s, 1000 + i));
            let stab = Stream::master(s).at(2).at(5).role(Role::Model(m)).at(16);
            assert_eq!(
                stab.seed(),
                derive_key(derive_key(derive_key(derive_key(s, 2), 5), 1 + i), 16)
            );
        }
        assert_eq!(
            Stream::master(s).at(1).at(4).role(Role::Discrete).seed(),
            derive_key(derive_key(derive_key(s, 1), 4), 0)
        );
    }
}
