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
//! `p`, is precise at no extra random numbers.
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
use sde_core::{Increments, PathRng, PathSimulation, Scheme, Solver, SolverWorkspace};

/// The blocks of observables a ladder path records per save point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    Discrete = 0,
    Fine = 1,
    Coarse = 2,
    DiscreteMinusFine = 3,
    DiscreteMinusCoarse = 4,
    CoarseMinusFine = 5,
}

/// Number of `n`-wide blocks before the alive indicators.
const BLOCKS: usize = 6;

/// Index of observable `o` of block `b` within a save point's values (`n` test functions).
#[inline]
pub fn index(b: Block, o: usize, n: usize) -> usize {
    b as usize * n + o
}

/// Index of the alive indicator of a side (`Discrete`, `Fine` or `Coarse`).
#[inline]
pub fn alive_index(side: Block, n: usize) -> usize {
    BLOCKS * n + side as usize
}

/// Observables per save point for `n` test functions.
pub fn width(n: usize) -> usize {
    BLOCKS * n + 3
}

/// The discrete optimizer (when `coupled`) and one SDE model at two levels on one Brownian path.
pub struct LadderPaths<'a, L, M, Sch, I> {
    pub solver: Solver<ModelSde<'a, L, M>, Sch, I>,
    pub opt: &'a Optimizer<L, M>,
    pub settings: &'a PathSettings,
    /// Substeps of the coarse level per iteration; the fine level has twice as many.
    pub coarse: usize,
    /// Drive the discrete optimizer with the SDE's noise (common random numbers).
    pub coupled: bool,
}

/// Buffers of one ladder path.
pub struct LadderWorkspace<W> {
    xd: Vec<f64>,
    xf: Vec<f64>,
    xc: Vec<f64>,
    g: Vec<f64>,
    normals: Vec<f64>,
    zeta: Vec<f64>,
    /// Fine increments of one iteration, `2c × m`.
    fine_dw: Vec<f64>,
    coarse_dw: Vec<f64>,
    /// Bridge normals of one component, `2c`.
    xi: Vec<f64>,
    vals: Vec<f64>,
    step: StepWorkspace,
    solver: SolverWorkspace<W>,
}

/// Number of standard normals one coupled iteration consumes (0: the method cannot be coupled).
pub fn coupling_dim<L: Loss, M: GradientMethod>(opt: &Optimizer<L, M>) -> usize {
    opt.coupling_dim()
}

impl<L: Loss, M: GradientMethod, Sch: Scheme, I: Increments> LadderPaths<'_, L, M, Sch, I> {
    fn fine(&self) -> usize {
        2 * self.coarse
    }

    /// Records one side at save point `s`; returns whether it is still alive.
    #[inline]
    fn record_side(
        &self,
        x: &[f64],
        g: &mut [f64],
        vals: &mut [f64],
        block: Block,
        alive: bool,
    ) -> bool {
        let st = self.settings;
        let n = st.observables.len();
        let o = &mut vals[block as usize * n..(block as usize + 1) * n];
        if !alive {
            o.fill(f64::NAN);
            return false;
        }
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

    /// Fills the difference blocks and alive indicators from the side blocks.
    #[inline]
    fn finish_save(&self, vals: &mut [f64], alive: [bool; 3]) {
        let n = self.settings.observables.len();
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
        vals[alive_index(Block::Discrete, n)] = if self.coupled {
            flag(alive[0])
        } else {
            f64::NAN
        };
        vals[alive_index(Block::Fine, n)] = flag(alive[1]);
        vals[alive_index(Block::Coarse, n)] = flag(alive[2]);
    }

    /// The fine increments of one iteration: a Brownian bridge pinned to `total` (exact
    /// increments), or fresh draws of the increment source.
    #[inline]
    fn fine_increments(
        &self,
        rng: &mut PathRng,
        total: &[f64],
        ws: &mut LadderWorkspace<Sch::Workspace>,
    ) {
        let nf = self.fine();
        let m = total.len();
        let hf = self.settings.eta / nf as f64;
        if I::EXACT {
            let sh = hf.sqrt();
            let inv = 1.0 / nf as f64;
            for (j, &tj) in total.iter().enumerate() {
                let mut mean = 0.0;
                for x in ws.xi.iter_mut() {
                    *x = rng.sample(StandardNormal);
                    mean += *x;
                }
                mean *= inv;
                let base = tj * inv;
                for (l, x) in ws.xi.iter().enumerate() {
                    ws.fine_dw[l * m + j] = base + sh * (x - mean);
                }
            }
        } else {
            let inc = self.solver.increments();
            for l in 0..nf {
                inc.draw(rng, hf, &mut ws.fine_dw[l * m..(l + 1) * m]);
            }
        }
    }
}

impl<L: Loss, M: GradientMethod, Sch: Scheme, I: Increments> PathSimulation
    for LadderPaths<'_, L, M, Sch, I>
{
    type Workspace = LadderWorkspace<Sch::Workspace>;

    fn workspace(&self) -> Self::Workspace {
        let d = self.opt.dim();
        let m = d;
        let n = self.settings.observables.len();
        LadderWorkspace {
            xd: self.settings.x0.clone(),
            xf: self.settings.x0.clone(),
            xc: self.settings.x0.clone(),
            g: vec![0.0; d],
            normals: vec![0.0; coupling_dim(self.opt).max(d)],
            zeta: vec![0.0; m],
            fine_dw: vec![0.0; self.fine() * m],
            coarse_dw: vec![0.0; m],
            xi: vec![0.0; self.fine()],
            vals: vec![0.0; width(n)],
            step: self.opt.workspace(),
            solver: self.solver.workspace(),
        }
    }
    fn n_save(&self) -> usize {
        self.settings.iterations + 1
    }
    fn n_observables(&self) -> usize {
        width(self.settings.observables.len())
    }

    fn simulate(
        &self,
        _path: u64,
        rng: &mut PathRng,
        ws: &mut Self::Workspace,
        out: &mut [f64],
    ) -> usize {
        let st = self.settings;
        let w = width(st.observables.len());
        let eta = st.eta;
        let (nf, nc) = (self.fine(), self.coarse);
        let (hf, hc) = (eta / nf as f64, eta / nc as f64);
        let m = ws.zeta.len();
        let scale = -eta.sqrt();
        // Independent sub-streams: what one of them draws never shifts another, so the coarse and
        // fine levels see the same Brownian path whatever the schemes' auxiliary draws are.
        let mut noise_rng = PathRng::seed_from_u64(rng.next_u64());
        let mut bridge_rng = PathRng::seed_from_u64(rng.next_u64());
        let mut aux_fine = PathRng::seed_from_u64(rng.next_u64());
        let mut aux_coarse = PathRng::seed_from_u64(rng.next_u64());
        let cdim = if self.coupled {
            coupling_dim(self.opt)
        } else {
            m
        };
        ws.xd.copy_from_slice(&st.x0);
        ws.xf.copy_from_slice(&st.x0);
        ws.xc.copy_from_slice(&st.x0);
        let mut alive = [self.coupled, true, true];
        let mut save =
            |s: usize, ws: &mut LadderWorkspace<Sch::Workspace>, alive: &mut [bool; 3]| {
                let LadderWorkspace {
                    xd,
                    xf,
                    xc,
                    g,
                    vals,
                    ..
                } = ws;
                alive[0] = self.record_side(xd, g, vals, Block::Discrete, alive[0]);
                alive[1] = self.record_side(xf, g, vals, Block::Fine, alive[1]);
                alive[2] = self.record_side(xc, g, vals, Block::Coarse, alive[2]);
                self.finish_save(vals, *alive);
                out[s * w..(s + 1) * w].copy_from_slice(vals);
            };
        save(0, ws, &mut alive);
        for k in 0..st.iterations {
            if !alive.iter().any(|a| *a) {
                // Every side has diverged: the rest is missing values and zero indicators.
                for s in k + 1..=st.iterations {
                    save(s, ws, &mut alive);
                }
                break;
            }
            // The iteration's normals: the coupling normals, or ζ itself.
            for v in ws.normals[..cdim].iter_mut() {
                *v = noise_rng.sample(StandardNormal);
            }
            if self.coupled {
                self.opt.coupling_zeta(&ws.normals[..cdim], &mut ws.zeta);
            } else {
                ws.zeta.copy_from_slice(&ws.normals[..m]);
            }
            for z in ws.zeta.iter_mut() {
                *z *= scale;
            }
            let total = std::mem::take(&mut ws.zeta);
            self.fine_increments(&mut bridge_rng, &total, ws);
            ws.zeta = total;
            if alive[1] {
                for l in 0..nf {
                    let t = (k * nf + l) as f64 * hf;
                    self.solver.step_with(
                        t,
                        hf,
                        &mut ws.xf,
                        &ws.fine_dw[l * m..(l + 1) * m],
                        &mut aux_fine,
                        &mut ws.solver,
                    );
                }
            }
            if alive[2] {
                for l in 0..nc {
                    for j in 0..m {
                        ws.coarse_dw[j] =
                            ws.fine_dw[2 * l * m + j] + ws.fine_dw[(2 * l + 1) * m + j];
                    }
                    let t = (k * nc + l) as f64 * hc;
                    self.solver.step_with(
                        t,
                        hc,
                        &mut ws.xc,
                        &ws.coarse_dw,
                        &mut aux_coarse,
                        &mut ws.solver,
                    );
                }
            }
            if alive[0] {
                self.opt.step_coupled(
                    k as u64,
                    eta,
                    &mut ws.xd,
                    &ws.normals[..cdim],
                    &mut noise_rng,
                    &mut ws.step,
                );
            }
            save(k + 1, ws, &mut alive);
        }
        st.iterations + 1
    }
}
