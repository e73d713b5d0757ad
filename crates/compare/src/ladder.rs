//! One SDE model integrated at two step sizes on one Brownian path, optionally coupled with the
//! discrete optimizer: the path simulation behind every weak-error point.
//!
//! Per iteration `k` (SDE time `[kη, (k+1)η]`) the SDE's Brownian increment over the whole
//! iteration is `−√η ζ_k` with `ζ_k ~ N(0, I)`; with common random numbers `ζ_k` is a function
//! of the normals that also drive the discrete step (`GradientMethod::coupling_zeta`), so the
//! discrete step and the SDE share their noise. The SDE runs at two levels on that one path:
//!
//! - **fine**: `2c` substeps of `η/(2c)`, whose increments are a Brownian bridge pinned to the
//!   iteration's total (`ΔW_l = T/n + √h (ξ_l − ξ̄)`: exactly iid `N(0, h)` increments summing to
//!   `T`), or, for two-/three-point increments (independent ensembles only), drawn directly;
//! - **coarse**: `c` substeps of `η/c`, each increment the sum of two fine ones (the `Refined`
//!   replay of `sde_core`).
//!
//! The difference of the two levels on one path has a small variance, so the Richardson estimate
//! of the integrator's bias, `(E g(X^{c}) − E g(X^{2c})) / (2^p − 1)` for a scheme of weak order
//! `p`, is precise at no extra random numbers, and the level that only serves it may run on the
//! first paths alone ([`LadderModel::coarse_paths`]): on the others it records NaN (a missing
//! value, left out of its statistics), and the other level's bits do not change.
//!
//! A **three-level** ladder (any model with [`LadderModel::finer_paths`] > 0) adds a level at `4c`
//! substeps for the Richardson extrapolation of the study's defaults. With exact Gaussian
//! increments its levels are nested coarse to fine ([`LevelWorkspace`]'s `nested`): the `c`
//! increments are a bridge pinned to the iteration's total and each finer level halves the
//! increments of the one above with its own stream, so a path where only level `c` runs draws `c`
//! normals per component; the blocks [`Block::Finer`], [`Block::FineMinusFiner`],
//! [`Block::Residual`], [`Block::Extrapolated`] and [`Block::DiscreteMinusExtrapolated`] follow
//! the six above, then the four alive indicators (discrete, fine, coarse, finer) and that of the
//! whole SDE side (any level that runs on the path diverged: 0).
//!
//! Every side (discrete, fine, coarse) is followed until it diverges on its own, so diverged paths
//! are counted per side. A value that does not exist (a diverged side, or a difference involving
//! one) is recorded as NaN, which the ensemble leaves out of that observable's statistics.
//!
//! Observables per save point, for `n` test functions (see [`Block`]): discrete, fine, coarse,
//! discrete − fine, discrete − coarse, coarse − fine (`n` each), then the alive indicators of the
//! discrete, fine and coarse sides (1 while alive, 0 after).

use crate::observable::evaluate_from;
use crate::sim::PathSettings;
use models::loss::Loss;
use models::method::GradientMethod;
use models::optimizer::{Optimizer, StepWorkspace};
use models::sde::ModelSde;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::StandardNormal;
use sde_core::{
    EnsembleStats, Increments, PathInput, PathRng, PathSimulation, Scheme, Solver, SolverWorkspace,
};
use std::sync::atomic::{AtomicU64, Ordering};

/// The blocks of observables a ladder path records per save point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    Discrete = 0,
    Fine = 1,
    Coarse = 2,
    DiscreteMinusFine = 3,
    DiscreteMinusCoarse = 4,
    CoarseMinusFine = 5,
    /// The third level (`4c` substeps), in a three-level ladder only.
    Finer = 6,
    FineMinusFiner = 7,
    /// `R' − R` of the Richardson extrapolations from the two coarser and the two finer levels,
    /// `−ρ x_c + (1 + 2ρ) x_f − (1 + ρ) x_{4c}` with `ρ = 1/(2^p − 1)`: a per-path combination
    /// that cancels constants and the `h^p` term, so its variance is small (three-level only).
    Residual = 8,
    /// The per-path extrapolation `(1 + ρ) x_{4c} − ρ x_f` (three-level only).
    Extrapolated = 9,
    DiscreteMinusExtrapolated = 10,
}

/// Number of `n`-wide blocks before the alive indicators.
const BLOCKS: usize = 6;
/// The same with a third level.
const BLOCKS3: usize = 11;

fn blocks(three: bool) -> usize {
    if three {
        BLOCKS3
    } else {
        BLOCKS
    }
}

/// Index of observable `o` of block `b` within a save point's values (`n` test functions).
#[inline]
pub fn index(b: Block, o: usize, n: usize) -> usize {
    b as usize * n + o
}

/// Index of the alive indicator of a side (`Discrete`, `Fine`, `Coarse` or, with three levels,
/// `Finer`; any other block names the indicator of the whole SDE side of a three-level ladder:
/// 1 while every level that runs on the path is alive).
#[inline]
pub fn alive_index(side: Block, n: usize, three: bool) -> usize {
    blocks(three) * n
        + match side {
            Block::Discrete => 0,
            Block::Fine => 1,
            Block::Coarse => 2,
            Block::Finer => 3,
            _ => 4,
        }
}

/// Observables per save point for `n` test functions (`three`: a three-level ladder).
pub fn width(n: usize, three: bool) -> usize {
    if three {
        BLOCKS3 * n + 5
    } else {
        BLOCKS * n + 3
    }
}

/// One SDE model of a ladder and its coarse level.
pub struct LadderModel<'a, L, M, Sch, I> {
    pub solver: Solver<ModelSde<'a, L, M>, Sch, I>,
    /// Substeps of the coarse level per iteration; the fine level has twice as many.
    pub coarse: usize,
    /// The coarse level runs on the paths of index below this (`u64::MAX`: every path). The
    /// level that only serves the bias estimate needs far fewer paths than the reported one: the
    /// coarse − fine difference of one Brownian path has a small variance.
    pub coarse_paths: u64,
    /// The same for the fine level.
    pub fine_paths: u64,
    /// The same for a third level at `4c` substeps (0: no third level). A ladder where any model
    /// has one records the three-level layout for every model.
    pub finer_paths: u64,
    /// `ρ = 1/(2^p − 1)` of the scheme's weak order `p`: the Richardson weight of the
    /// [`Block::Residual`] combination.
    pub richardson: f64,
}

/// The discrete optimizer (when `coupled`) and SDE models, each at two levels on one Brownian
/// path. Model `i` writes the observables of [`width`]`(n)` at offset `i · width(n)` of a save
/// point (its discrete block is the shared discrete side), so [`LadderPaths::model_stats`]
/// gives each model the statistics a ladder of that model alone would have: the discrete side,
/// its noise and the coupling normals are drawn once per path for all models.
pub struct LadderPaths<'a, L, M, Sch, I> {
    models: Vec<LadderModel<'a, L, M, Sch, I>>,
    opt: &'a Optimizer<L, M>,
    settings: &'a PathSettings,
    /// Drive the discrete optimizer with the SDE's noise (common random numbers).
    coupled: bool,
    /// Three levels (`c`, `2c`, `4c`) instead of two.
    three: bool,
    /// Index of each model's coarse level among the distinct levels.
    level_of: Vec<usize>,
    /// Random numbers drawn, summed over paths (integer sums: the same for any thread count):
    /// the iterations' normals (the coupling normals, or `ζ` itself), then those of each
    /// distinct level's increments within the iterations (normals, or words for discrete
    /// increments).
    noise: AtomicU64,
    levels: Vec<AtomicU64>,
    /// SDE substeps taken per model (both levels, alive paths only), summed over paths.
    sde_steps: Vec<AtomicU64>,
    /// Discrete iterations taken (alive paths only), summed over paths.
    discrete_steps: AtomicU64,
}

impl<'a, L: Loss, M: GradientMethod, Sch: Scheme, I: Increments> LadderPaths<'a, L, M, Sch, I> {
    /// A ladder of `models` (at least one) on the paths of `settings`.
    pub fn new(
        models: Vec<LadderModel<'a, L, M, Sch, I>>,
        opt: &'a Optimizer<L, M>,
        settings: &'a PathSettings,
        coupled: bool,
    ) -> Self {
        let mut distinct: Vec<usize> = Vec::new();
        let level_of = models
            .iter()
            .map(|lm| match distinct.iter().position(|&c| c == lm.coarse) {
                Some(i) => i,
                None => {
                    distinct.push(lm.coarse);
                    distinct.len() - 1
                }
            })
            .collect();
        let three = models.iter().any(|lm| lm.finer_paths > 0);
        LadderPaths {
            opt,
            settings,
            coupled,
            three,
            level_of,
            noise: AtomicU64::new(0),
            levels: distinct.iter().map(|_| AtomicU64::new(0)).collect(),
            sde_steps: models.iter().map(|_| AtomicU64::new(0)).collect(),
            discrete_steps: AtomicU64::new(0),
            models,
        }
    }

    /// Normals behind the iterations (the discrete side's coupling normals, or the SDE's `ζ`
    /// when uncoupled) drawn so far.
    pub fn noise_drawn(&self) -> u64 {
        self.noise.load(Ordering::Relaxed)
    }

    /// Random numbers of model `i`'s increments within the iterations drawn so far (shared with
    /// the models at the same coarse level).
    pub fn increments_drawn(&self, i: usize) -> u64 {
        self.levels[self.level_of[i]].load(Ordering::Relaxed)
    }

    /// SDE substeps model `i` has taken so far (both levels).
    pub fn sde_steps(&self, i: usize) -> u64 {
        self.sde_steps[i].load(Ordering::Relaxed)
    }

    /// Discrete iterations taken so far (0 when uncoupled: the discrete side runs elsewhere).
    pub fn discrete_steps(&self) -> u64 {
        self.discrete_steps.load(Ordering::Relaxed)
    }

    /// Every random number drawn so far (shared ones once).
    pub fn drawn(&self) -> u64 {
        self.noise_drawn()
            + self
                .levels
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum::<u64>()
    }
}

/// Per-level buffers: models at the same coarse level share one Brownian path.
struct LevelWorkspace {
    /// Substeps of the finest level (`2c`, or `4c` with three levels): the bridge's resolution.
    finest: usize,
    rng: PathRng,
    /// Finest increments of one iteration, `finest × m` (not with `nested`).
    fine_dw: Vec<f64>,
    /// Bridge normals of one component, `finest` (with `nested`: `c`).
    xi: Vec<f64>,
    /// Three levels of exact Gaussian increments, built coarse to fine: the `c` increments are a
    /// bridge pinned to the iteration's total, each finer one halves an increment of the level
    /// above (`a = S/2 + √(h/2) ξ`, `S − a`: exactly iid `N(0, h)`), with its own stream. A path
    /// where only level `c` runs then draws `c` normals per component, not `4c`, and no level's
    /// increments depend on whether a finer one is drawn.
    nested: bool,
    c: usize,
    /// Increments at `c`, `2c`, `4c` substeps (`nested` only).
    dw: [Vec<f64>; 3],
    split_rng: [PathRng; 2],
    /// Whether the `2c` and `4c` increments are needed on the current path.
    need: [bool; 2],
    /// Random numbers drawn on the current path.
    drawn: u64,
}

/// Per-model buffers; the levels in the order fine (`2c`), coarse (`c`), finer (`4c`).
struct ModelWorkspace<W> {
    level: usize,
    xs: [Vec<f64>; 3],
    aux: [PathRng; 3],
    alive: [bool; 3],
    /// Whether each level runs on the current path (see [`LadderModel::coarse_paths`]); an
    /// absent level records NaN, indicator included.
    present: [bool; 3],
    /// Substeps taken on the current path.
    steps: u64,
    solver: SolverWorkspace<W>,
}

/// Buffers of one ladder path.
pub struct LadderWorkspace<W> {
    xd: Vec<f64>,
    g: Vec<f64>,
    normals: Vec<f64>,
    zeta: Vec<f64>,
    coarse_dw: Vec<f64>,
    /// Observables of the discrete side at the current save point (`n`).
    dvals: Vec<f64>,
    levels: Vec<LevelWorkspace>,
    models: Vec<ModelWorkspace<W>>,
    step: StepWorkspace,
}

/// Number of standard normals one coupled iteration consumes (0: the method cannot be coupled).
pub fn coupling_dim<L: Loss, M: GradientMethod>(opt: &Optimizer<L, M>) -> usize {
    opt.coupling_dim()
}

/// The statistics of model `i` of a ladder run over `models` models, laid out as [`width`]`(n)`
/// observables (the layout of [`index`] and [`alive_index`]).
pub fn model_stats(stats: &EnsembleStats, i: usize, n: usize, three: bool) -> EnsembleStats {
    let w = width(n, three);
    let all = stats.n_observables;
    let mut cols = Vec::with_capacity(stats.n_save * w);
    for s in 0..stats.n_save {
        cols.extend_from_slice(&stats.stats[s * all + i * w..s * all + (i + 1) * w]);
    }
    EnsembleStats {
        paths: stats.paths,
        n_save: stats.n_save,
        n_observables: w,
        stats: cols,
        diverged: stats.diverged.clone(),
    }
}

impl<L: Loss, M: GradientMethod, Sch: Scheme, I: Increments> LadderPaths<'_, L, M, Sch, I> {
    /// Evaluates the observables of `x` into `o`; whether the side is still alive.
    #[inline]
    fn record(&self, x: &[f64], g: &mut [f64], o: &mut [f64], alive: bool) -> bool {
        if !alive {
            o.fill(f64::NAN);
            return false;
        }
        let st = self.settings;
        let f = evaluate_from(self.opt.loss(), &st.observables, &st.x0, x, g, o);
        let ok = f.is_finite()
            && f <= st.diverge_above
            && o.iter().all(|v| v.is_finite())
            && x.iter().all(|v| v.is_finite());
        if !ok {
            o.fill(f64::NAN);
        }
        ok
    }

    /// Writes save point `s` of every model into `out`.
    fn save(
        &self,
        s: usize,
        ws: &mut LadderWorkspace<Sch::Workspace>,
        alive_d: &mut bool,
        out: &mut [f64],
    ) {
        let n = self.settings.observables.len();
        let w = width(n, self.three);
        let total = w * self.models.len();
        let LadderWorkspace {
            xd,
            g,
            dvals,
            models,
            ..
        } = ws;
        *alive_d = self.record(xd, g, dvals, *alive_d);
        let row = &mut out[s * total..(s + 1) * total];
        for ((mw, vals), lm) in models
            .iter_mut()
            .zip(row.chunks_exact_mut(w))
            .zip(&self.models)
        {
            vals[..n].copy_from_slice(dvals);
            let (fine, rest) = vals[n..].split_at_mut(n);
            mw.alive[0] = self.record(&mw.xs[0], g, fine, mw.alive[0]);
            mw.alive[1] = self.record(&mw.xs[1], g, &mut rest[..n], mw.alive[1]);
            if self.three {
                let at = index(Block::Finer, 0, n);
                mw.alive[2] = self.record(&mw.xs[2], g, &mut vals[at..at + n], mw.alive[2]);
                let rho = lm.richardson;
                for o in 0..n {
                    let f = vals[index(Block::Fine, o, n)];
                    let c = vals[index(Block::Coarse, o, n)];
                    let r = vals[index(Block::Finer, o, n)];
                    vals[index(Block::FineMinusFiner, o, n)] = f - r;
                    vals[index(Block::Residual, o, n)] =
                        (1.0 + 2.0 * rho) * f - rho * c - (1.0 + rho) * r;
                    let x = (1.0 + rho) * r - rho * f;
                    vals[index(Block::Extrapolated, o, n)] = x;
                    vals[index(Block::DiscreteMinusExtrapolated, o, n)] =
                        vals[index(Block::Discrete, o, n)] - x;
                }
            }
            for o in 0..n {
                let d = vals[index(Block::Discrete, o, n)];
                let f = vals[index(Block::Fine, o, n)];
                let c = vals[index(Block::Coarse, o, n)];
                // NaN propagates: a difference with a diverged side is missing.
                vals[index(Block::DiscreteMinusFine, o, n)] = d - f;
                vals[index(Block::DiscreteMinusCoarse, o, n)] = d - c;
                vals[index(Block::CoarseMinusFine, o, n)] = c - f;
            }
            let flag = |a: bool| if a { 1.0 } else { 0.0 };
            let three = self.three;
            vals[alive_index(Block::Discrete, n, three)] = if self.coupled {
                flag(*alive_d)
            } else {
                f64::NAN
            };
            let indicator = |present: bool, a: bool| if present { flag(a) } else { f64::NAN };
            vals[alive_index(Block::Fine, n, three)] = indicator(mw.present[0], mw.alive[0]);
            vals[alive_index(Block::Coarse, n, three)] = indicator(mw.present[1], mw.alive[1]);
            if three {
                vals[alive_index(Block::Finer, n, true)] = indicator(mw.present[2], mw.alive[2]);
                // The SDE side of a three-level point has diverged on a path as soon as any
                // level that runs there has.
                let any = mw.present.iter().any(|&p| p);
                let all = (0..3).all(|l| !mw.present[l] || mw.alive[l]);
                vals[alive_index(Block::Residual, n, true)] = indicator(any, all);
            }
        }
    }
}

/// `xi.len()` exact `N(0, η/xi.len())` increments per component summing to `total`, into `out`
/// (`xi.len() × m`): a Brownian bridge.
#[inline]
fn bridge(rng: &mut PathRng, xi: &mut [f64], out: &mut [f64], total: &[f64], eta: f64) -> u64 {
    let nf = xi.len();
    let m = total.len();
    let sh = (eta / nf as f64).sqrt();
    let inv = 1.0 / nf as f64;
    for (j, &tj) in total.iter().enumerate() {
        let mut mean = 0.0;
        for x in xi.iter_mut() {
            *x = rng.sample(StandardNormal);
            mean += *x;
        }
        mean *= inv;
        let base = tj * inv;
        for (l, x) in xi.iter().enumerate() {
            out[l * m + j] = base + sh * (x - mean);
        }
    }
    (nf * m) as u64
}

/// The increments of one iteration of a nested level workspace (see [`LevelWorkspace::nested`]).
fn nested_increments(eta: f64, total: &[f64], lw: &mut LevelWorkspace) -> u64 {
    let m = total.len();
    let mut drawn = if lw.c == 1 {
        lw.dw[0].copy_from_slice(total);
        0
    } else {
        bridge(&mut lw.rng, &mut lw.xi, &mut lw.dw[0], total, eta)
    };
    for r in 0..2 {
        if !lw.need[r] {
            break;
        }
        let n = lw.c << r;
        let s = (eta / (4 * n) as f64).sqrt();
        let (upper, lower) = lw.dw.split_at_mut(r + 1);
        let (from, to) = (&upper[r], &mut lower[0]);
        for l in 0..n {
            for j in 0..m {
                let sum = from[l * m + j];
                let a: f64 = 0.5 * sum + s * lw.split_rng[r].sample::<f64, _>(StandardNormal);
                to[2 * l * m + j] = a;
                to[(2 * l + 1) * m + j] = sum - a;
            }
        }
        drawn += (n * m) as u64;
    }
    drawn
}

/// The fine increments of one iteration at one level: a Brownian bridge pinned to `total`
/// (exact increments), or fresh draws of the increment source. Returns the random numbers drawn.
#[inline]
fn fine_increments<I: Increments>(
    inc: &I,
    eta: f64,
    total: &[f64],
    lw: &mut LevelWorkspace,
) -> u64 {
    if lw.nested {
        return nested_increments(eta, total, lw);
    }
    let nf = lw.finest;
    let m = total.len();
    let hf = eta / nf as f64;
    if I::EXACT {
        bridge(&mut lw.rng, &mut lw.xi, &mut lw.fine_dw, total, eta)
    } else {
        for l in 0..nf {
            inc.draw(&mut lw.rng, hf, &mut lw.fine_dw[l * m..(l + 1) * m]);
        }
        nf as u64 * inc.random_numbers(m)
    }
}

impl<L: Loss, M: GradientMethod, Sch: Scheme, I: Increments> PathSimulation
    for LadderPaths<'_, L, M, Sch, I>
{
    type Workspace = LadderWorkspace<Sch::Workspace>;

    // The random-number counts, for ensembles split over processes (sde_core::distribute).
    fn counters(&self) -> Vec<u64> {
        std::iter::once(&self.noise)
            .chain(&self.levels)
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    fn set_counters(&self, totals: &[u64]) {
        for (c, &t) in std::iter::once(&self.noise).chain(&self.levels).zip(totals) {
            c.store(t, Ordering::Relaxed);
        }
    }

    fn workspace(&self) -> Self::Workspace {
        let d = self.opt.dim();
        // Brownian dimension: `d`, or the columns of a non-square factor (minibatch noise, which
        // is never coupled, so `zeta` then holds the uncoupled normals alone).
        let m = self.opt.method().noise_dim();
        let n = self.settings.observables.len();
        let mut levels: Vec<LevelWorkspace> = Vec::new();
        let mut models = Vec::with_capacity(self.models.len());
        for (lm, &level) in self.models.iter().zip(&self.level_of) {
            if level == levels.len() {
                let finest = if self.three { 4 } else { 2 } * lm.coarse;
                let c = lm.coarse;
                let nested = self.three && I::EXACT;
                let sized = |n: usize| if nested { vec![0.0; n * m] } else { Vec::new() };
                levels.push(LevelWorkspace {
                    finest,
                    rng: PathRng::seed_from_u64(0),
                    fine_dw: if nested {
                        Vec::new()
                    } else {
                        vec![0.0; finest * m]
                    },
                    xi: vec![0.0; if nested { c } else { finest }],
                    nested,
                    c,
                    dw: [sized(c), sized(2 * c), sized(4 * c)],
                    split_rng: std::array::from_fn(|_| PathRng::seed_from_u64(0)),
                    need: [true; 2],
                    drawn: 0,
                });
            }
            models.push(ModelWorkspace {
                level,
                xs: std::array::from_fn(|_| self.settings.x0.clone()),
                aux: std::array::from_fn(|_| PathRng::seed_from_u64(0)),
                alive: [true; 3],
                present: [true; 3],
                steps: 0,
                solver: lm.solver.workspace(),
            });
        }
        LadderWorkspace {
            xd: self.settings.x0.clone(),
            g: vec![0.0; d],
            normals: vec![0.0; coupling_dim(self.opt).max(m)],
            zeta: vec![0.0; m],
            coarse_dw: vec![0.0; m],
            dvals: vec![0.0; n],
            levels,
            models,
            step: self.opt.workspace(),
        }
    }
    fn n_save(&self) -> usize {
        self.settings.iterations + 1
    }
    fn n_observables(&self) -> usize {
        width(self.settings.observables.len(), self.three) * self.models.len()
    }

    fn simulate(&self, path: PathInput<'_>, ws: &mut Self::Workspace, out: &mut [f64]) -> usize {
        let PathInput { index: path, rng } = path;
        let st = self.settings;
        let eta = st.eta;
        let m = ws.zeta.len();
        let scale = -eta.sqrt();
        // Independent sub-streams: what one of them draws never shifts another, so the coarse and
        // fine levels see the same Brownian path whatever the schemes' auxiliary draws are. Every
        // model and level restarts them from the same seeds, so each model's numbers are those
        // of a ladder of that model alone.
        let mut noise_rng = PathRng::seed_from_u64(rng.next_u64());
        let bridge_seed = rng.next_u64();
        let aux_fine_seed = rng.next_u64();
        let aux_coarse_seed = rng.next_u64();
        let aux_finer_seed = if self.three { rng.next_u64() } else { 0 };
        let split_seeds = if self.three {
            [rng.next_u64(), rng.next_u64()]
        } else {
            [0; 2]
        };
        for lw in ws.levels.iter_mut() {
            lw.rng = PathRng::seed_from_u64(bridge_seed);
            lw.split_rng = split_seeds.map(PathRng::seed_from_u64);
            lw.need = [false; 2];
            lw.drawn = 0;
        }
        for (lm, mw) in self.models.iter().zip(ws.models.iter_mut()) {
            mw.aux = [aux_fine_seed, aux_coarse_seed, aux_finer_seed].map(PathRng::seed_from_u64);
            for x in mw.xs.iter_mut() {
                x.copy_from_slice(&st.x0);
            }
            // An absent level is a side that never lives: nothing is stepped or evaluated. The
            // bridge is drawn whatever the levels present, so the other level's bits do not
            // depend on it.
            mw.present = [
                path < lm.fine_paths,
                path < lm.coarse_paths,
                self.three && path < lm.finer_paths,
            ];
            mw.alive = mw.present;
            mw.steps = 0;
            let lw = &mut ws.levels[mw.level];
            lw.need[0] |= mw.present[0] || mw.present[2];
            lw.need[1] |= mw.present[2];
        }
        let cdim = if self.coupled {
            coupling_dim(self.opt)
        } else {
            m
        };
        ws.xd.copy_from_slice(&st.x0);
        let mut alive_d = self.coupled;
        let mut noise = 0u64;
        let mut discrete_steps = 0u64;
        self.save(0, ws, &mut alive_d, out);
        for k in 0..st.iterations {
            if !alive_d && ws.models.iter().all(|mw| mw.alive.iter().all(|a| !a)) {
                // Every side has diverged: the rest is missing values and zero indicators.
                for s in k + 1..=st.iterations {
                    self.save(s, ws, &mut alive_d, out);
                }
                break;
            }
            // The iteration's normals: the coupling normals, or ζ itself.
            for v in ws.normals[..cdim].iter_mut() {
                *v = noise_rng.sample(StandardNormal);
            }
            noise += cdim as u64;
            if self.coupled {
                self.opt.coupling_zeta(&ws.normals[..cdim], &mut ws.zeta);
            } else {
                ws.zeta.copy_from_slice(&ws.normals[..m]);
            }
            for z in ws.zeta.iter_mut() {
                *z *= scale;
            }
            let inc = match self.models.first() {
                Some(lm) => lm.solver.increments(),
                None => break,
            };
            for lw in ws.levels.iter_mut() {
                lw.drawn += fine_increments(inc, eta, &ws.zeta, lw);
            }
            for (lm, mw) in self.models.iter().zip(ws.models.iter_mut()) {
                let lw = &ws.levels[mw.level];
                for (lv, mult) in [(0usize, 2usize), (1, 1), (2, 4)] {
                    if !mw.alive[lv] {
                        continue;
                    }
                    let nl = mult * lm.coarse;
                    // Each increment of this level sums `group` consecutive finest ones (the
                    // same Brownian path at every level), or is one of the nested ones.
                    let (src, group) = if lw.nested {
                        (&lw.dw[mult.trailing_zeros() as usize], 1)
                    } else {
                        (&lw.fine_dw, lw.finest / nl)
                    };
                    let h = eta / nl as f64;
                    mw.steps += nl as u64;
                    for l in 0..nl {
                        let dw: &[f64] = if group == 1 {
                            &src[l * m..(l + 1) * m]
                        } else {
                            for j in 0..m {
                                let mut sum = src[group * l * m + j];
                                for q in 1..group {
                                    sum += src[(group * l + q) * m + j];
                                }
                                ws.coarse_dw[j] = sum;
                            }
                            &ws.coarse_dw
                        };
                        let t = (k * nl + l) as f64 * h;
                        lm.solver.step_with(
                            t,
                            h,
                            &mut mw.xs[lv],
                            dw,
                            &mut mw.aux[lv],
                            &mut mw.solver,
                        );
                    }
                }
            }
            if alive_d {
                discrete_steps += 1;
                self.opt.step_coupled(
                    k as u64,
                    eta,
                    &mut ws.xd,
                    &ws.normals[..cdim],
                    &mut noise_rng,
                    &mut ws.step,
                );
            }
            self.save(k + 1, ws, &mut alive_d, out);
        }
        self.noise.fetch_add(noise, Ordering::Relaxed);
        self.discrete_steps
            .fetch_add(discrete_steps, Ordering::Relaxed);
        for (c, mw) in self.sde_steps.iter().zip(&ws.models) {
            c.fetch_add(mw.steps, Ordering::Relaxed);
        }
        for (c, lw) in self.levels.iter().zip(&ws.levels) {
            c.fetch_add(lw.drawn, Ordering::Relaxed);
        }
        st.iterations + 1
    }
}
