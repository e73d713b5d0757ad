//! SVAG (Li, Malladi & Arora 2021, "On the validity of modeling SGD with stochastic differential
//! equations"): a second, independent way to simulate the first-order SDE (A) of any gradient
//! method, without forming its covariance.
//!
//! With two independent draws `u₁, u₂` of the method's direction at the current state and
//! `r_{1,2} = (1 ± √(2l − 1))/2`, the SVAG direction `r₁u₁ + r₂u₂` has the mean `μ` of one draw
//! (`r₁ + r₂ = 1`) and `l` times its covariance (`r₁² + r₂² = l`). Taking `l` steps of size
//! `η/l` per iteration therefore matches, per unit of SDE time, the drift `−μ` and the diffusion
//! `η C` of (A) exactly, while every higher cumulant shrinks with `l`: the SVAG process converges
//! weakly to (A) as `l → ∞` (their Theorem 3.2; `l = 1` is the discrete method itself). Only the
//! sampler is needed, so it checks the SDE's covariance factor (e.g. the minibatch factor of
//! `models::minibatch`) against the law it was derived from.
//!
//! A schedule multiplies each small step by `η_t` at its SDE time `t`.

use crate::error::{CompareError, Setting};
use crate::observable::evaluate_from;
use crate::sim::{ModelPaths, PathSettings};
use crate::streams::Stream;
use crate::study::{check_horizon_and_etas, check_paths, check_x0, iterations, Progress};
use crate::trajectory::{summarize, Trajectory, TrajectorySettings};
use models::loss::Loss;
use models::method::GradientMethod;
use models::optimizer::{norm, Optimizer};
use models::sde::SdeModel;
use sde_core::{Ensemble, EnsembleStats, PathInput, PathSimulation};

/// `(r₁, r₂)` of SVAG with parameter `l ≥ 1`.
pub fn svag_weights(l: usize) -> (f64, f64) {
    let s = (2.0 * l as f64 - 1.0).sqrt();
    ((1.0 + s) / 2.0, (1.0 - s) / 2.0)
}

/// The SVAG process of `opt` with parameter `l`, recorded at every iteration `k` (time `kη`).
pub struct SvagPaths<'a, L, M> {
    pub opt: &'a Optimizer<L, M>,
    pub settings: &'a PathSettings,
    pub l: usize,
}

pub struct SvagWorkspace {
    x: Vec<f64>,
    g: Vec<f64>,
    u1: Vec<f64>,
    u2: Vec<f64>,
    scratch: Vec<f64>,
    rec: Vec<f64>,
}

impl<'a, L: Loss, M: GradientMethod> SvagPaths<'a, L, M> {
    /// `l ≥ 1` (named `sde.svag_l` in errors).
    pub fn new(
        opt: &'a Optimizer<L, M>,
        settings: &'a PathSettings,
        l: usize,
    ) -> Result<Self, CompareError> {
        if l == 0 {
            return Err(CompareError::bad(Setting::SvagL, 0, "must be at least 1"));
        }
        Ok(SvagPaths { opt, settings, l })
    }

    fn record(&self, x: &[f64], g: &mut [f64], out: &mut [f64], s: usize) -> bool {
        let n = self.settings.observables.len();
        let o = &mut out[s * n..(s + 1) * n];
        let f = evaluate_from(
            self.opt.loss(),
            &self.settings.observables,
            &self.settings.x0,
            x,
            g,
            o,
        );
        f.is_finite() && f <= self.settings.diverge_above && o.iter().all(|v| v.is_finite())
    }
}

impl<L: Loss, M: GradientMethod> PathSimulation for SvagPaths<'_, L, M> {
    type Workspace = SvagWorkspace;
    fn workspace(&self) -> SvagWorkspace {
        let d = self.opt.dim();
        SvagWorkspace {
            x: self.settings.x0.clone(),
            g: vec![0.0; d],
            u1: vec![0.0; d],
            u2: vec![0.0; d],
            scratch: vec![0.0; self.opt.method().scratch_len()],
            rec: vec![0.0; d],
        }
    }
    fn n_save(&self) -> usize {
        self.settings.iterations + 1
    }
    fn n_observables(&self) -> usize {
        self.settings.observables.len()
    }
    fn simulate(&self, path: PathInput<'_>, ws: &mut SvagWorkspace, out: &mut [f64]) -> usize {
        let rng = path.rng;
        let st = self.settings;
        let (method, schedule, loss) = (self.opt.method(), self.opt.schedule(), self.opt.loss());
        let (r1, r2) = svag_weights(self.l);
        let h = st.eta / self.l as f64;
        let needs_g = method.needs_full_gradient() || schedule.depends_on_gradient();
        ws.x.copy_from_slice(&st.x0);
        if !self.record(&ws.x, &mut ws.rec, out, 0) {
            return 0;
        }
        for k in 0..st.iterations {
            for j in 0..self.l {
                if needs_g {
                    loss.gradient(&ws.x, &mut ws.g);
                }
                let t = (k * self.l + j) as f64 * h;
                let et = schedule.eta_t(t, st.eta, norm(&ws.g));
                method.sample_at(&ws.x, &ws.g, rng, &mut ws.u1, &mut ws.scratch);
                method.sample_at(&ws.x, &ws.g, rng, &mut ws.u2, &mut ws.scratch);
                let s = h * et;
                for ((x, a), b) in ws.x.iter_mut().zip(&ws.u1).zip(&ws.u2) {
                    *x -= s * (r1 * a + r2 * b);
                }
            }
            if !self.record(&ws.x, &mut ws.rec, out, k + 1) {
                return k + 1;
            }
        }
        st.iterations + 1
    }
}

/// The first step of the SVAG runs' stream path ([`crate::streams::Stream::at`]), then `l`:
/// a grid index no study, trajectory or stability run reaches, so SVAG's noise is independent of
/// every other ensemble of the same master seed.
const SVAG_STREAM: usize = 0x5fa6;

/// Path simulations [`svag_trajectories`] performs (for a progress bar).
pub fn svag_work(s: &TrajectorySettings, ls: &[usize]) -> u64 {
    let extra = if s.quantile_paths >= s.paths {
        0
    } else {
        s.quantile_paths
    };
    ls.len() as u64 * (s.paths + extra)
}

/// Trajectories of SVAG(`l`) for every `l` in `ls`, at the settings of
/// [`crate::trajectory::trajectories`] (same learning rate, paths, observables and quantiles),
/// labelled `SVAG l=<l>`; each `l` on its own stream (`SVAG_STREAM`, then `l`).
pub fn svag_trajectories<L: Loss, M: GradientMethod>(
    opt: &Optimizer<L, M>,
    s: &TrajectorySettings,
    ls: &[usize],
    progress: Progress,
) -> Result<Vec<(usize, Trajectory)>, CompareError> {
    check_horizon_and_etas(s.horizon, &[s.eta])?;
    check_paths(s.paths)?;
    check_x0(&s.x0, opt.dim())?;
    let settings = PathSettings {
        eta: s.eta,
        iterations: iterations(s.horizon, s.eta),
        x0: s.x0.clone(),
        observables: s.observables.clone(),
        diverge_above: s.diverge_above,
    };
    ls.iter()
        .map(|&l| {
            let sim = SvagPaths::new(opt, &settings, l)?;
            let seed = Stream::master(s.seed).at(SVAG_STREAM).at(l).seed();
            summarize(format!("SVAG l={l}"), &sim, s, seed, progress).map(|t| (l, t))
        })
        .collect()
}

/// `E g(X_T)` at the last iteration by SVAG(`l`) and by Euler–Maruyama on (A) with `substeps`
/// steps per iteration, with 95% intervals (independent ensembles).
#[derive(Clone, Debug, PartialEq)]
pub struct SvagAgreement {
    pub l: usize,
    pub observable: usize,
    pub svag_mean: f64,
    pub svag_ci95: f64,
    pub sde_mean: f64,
    pub sde_ci95: f64,
}

impl SvagAgreement {
    /// `|difference| ≤` the 95% interval of the difference (`√(ci₁² + ci₂²)`).
    pub fn agrees(&self) -> bool {
        (self.svag_mean - self.sde_mean).abs() <= self.svag_ci95.hypot(self.sde_ci95)
    }
}

fn last_point(stats: &EnsembleStats, s: usize, o: usize) -> (f64, f64) {
    let sum = stats.summary(s, o);
    (sum.mean, sum.ci95)
}

/// Runs (A) by Euler–Maruyama and SVAG for every `l` in `ls` on `paths` paths each, seeds derived
/// from `seed`; one [`SvagAgreement`] per `l` and observable, at the last iteration.
pub fn svag_versus_sde<L: Loss, M: GradientMethod>(
    opt: &Optimizer<L, M>,
    settings: &PathSettings,
    ls: &[usize],
    substeps: usize,
    paths: u64,
    seed: u64,
) -> Result<Vec<SvagAgreement>, CompareError> {
    let sde = opt.sde(SdeModel::FirstOrder, settings.eta)?;
    let solver = sde_core::Solver::new(sde, sde_core::EulerMaruyama, sde_core::Gaussian)?;
    let sim = ModelPaths {
        solver,
        settings,
        substeps,
    };
    let last = settings.iterations;
    let sde_stats = Ensemble::new(paths, sde_core::derive_key(seed, 1))?.run(&sim);
    let mut out = Vec::new();
    for (i, &l) in ls.iter().enumerate() {
        let svag = SvagPaths::new(opt, settings, l)?;
        let stats = Ensemble::new(paths, sde_core::derive_key(seed, 100 + i as u64))?.run(&svag);
        for o in 0..settings.observables.len() {
            let (svag_mean, svag_ci95) = last_point(&stats, last, o);
            let (sde_mean, sde_ci95) = last_point(&sde_stats, last, o);
            out.push(SvagAgreement {
                l,
                observable: o,
                svag_mean,
                svag_ci95,
                sde_mean,
                sde_ci95,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observable::Observable;
    use models::loss::DiagonalQuadratic;
    use models::method::{Agent, Dsgd};
    use models::noise::GaussianNoise;
    use models::schedule::Schedule;
    use models::{CompressorKind, Identity};

    #[test]
    fn svag_weights_keep_the_mean_and_scale_the_variance_by_l() {
        for l in [1, 2, 5, 64] {
            let (a, b) = svag_weights(l);
            assert!((a + b - 1.0).abs() < 1e-15);
            assert!((a * a + b * b - l as f64).abs() < 1e-12 * l as f64);
        }
    }

    /// DSGD on `λx²/2` with additive noise `σ`: (A) is an Ornstein–Uhlenbeck process with
    /// `E X_T² = x0² e^{−2λT} + ησ²(1 − e^{−2λT})/(2λ)`, the discrete method (`l = 1`) is not
    /// (its stationary variance is `ησ²/(λ(2 − ηλ))`), and SVAG approaches (A) as `l` grows.
    #[test]
    fn svag_converges_to_the_first_order_sde_and_agrees_with_euler_maruyama() {
        let (lambda, sigma, eta, x0) = (2.0, 1.0, 0.2, 1.0);
        let loss = DiagonalQuadratic::new(vec![lambda]).unwrap();
        let agent = Agent {
            noise: GaussianNoise::isotropic(1, sigma, 0.0).unwrap().into(),
            compressor: CompressorKind::Identity(Identity),
        };
        let opt =
            Optimizer::new(loss, Dsgd::new(vec![agent]).unwrap(), Schedule::constant()).unwrap();
        let horizon = 2.0;
        let settings = PathSettings {
            eta,
            iterations: (horizon / eta) as usize,
            x0: vec![x0],
            observables: vec![Observable::XSq],
            diverge_above: 1e12,
        };
        let e = (-2.0 * lambda * horizon).exp();
        let exact = x0 * x0 * e + eta * sigma * sigma * (1.0 - e) / (2.0 * lambda);
        let res = svag_versus_sde(&opt, &settings, &[1, 4, 32], 32, 50_000, 7).unwrap();
        let (l1, l4, l32) = (&res[0], &res[1], &res[2]);
        // EM with 32 substeps is within its interval (plus its O(h) bias, ≈ 3e-4 here) of (A).
        assert!(
            (l1.sde_mean - exact).abs() < l1.sde_ci95 + 5e-4,
            "{l1:?} vs {exact}"
        );
        // The discrete method (l = 1) and SVAG(4) are resolved away from (A): their stationary
        // variances are ησ²/(λ(2 − ηλ/l)), 25% and 5% above (A)'s.
        assert!(!l1.agrees(), "{l1:?}");
        assert!(!l4.agrees(), "{l4:?}");
        assert!(l4.svag_mean < l1.svag_mean);
        // SVAG with l = 32 agrees with Euler–Maruyama within the intervals, and with (A).
        assert!(l32.agrees(), "{l32:?}");
        assert!(
            (l32.svag_mean - exact).abs() < l32.svag_ci95 + 5e-4,
            "{l32:?} vs {exact}"
        );
    }

    /// Minibatch noise on a real network (logistic regression on iris, one agent, B = 8):
    /// non-Gaussian and state-dependent. SVAG, which only samples minibatches, and Euler–Maruyama
    /// on (A), which uses the `d × n` per-example factor, agree within intervals on the training
    /// loss and ‖x‖²: an independent check of the factor.
    #[test]
    fn svag_agrees_with_euler_maruyama_under_minibatch_noise() {
        use models::data::DatasetName;
        use models::minibatch::{Minibatch, MinibatchRule};
        use models::mlp::{Mlp, MlpSpec};
        use std::sync::Arc;
        let net = Arc::new(Mlp::new(MlpSpec::logistic(DatasetName::Iris, 3)).unwrap());
        let mb = Minibatch::new(net.clone(), MinibatchRule::Sgd, 1, 8, true).unwrap();
        let x0 = net.x0().to_vec();
        let opt = Optimizer::new(net, mb, Schedule::constant()).unwrap();
        let settings = PathSettings {
            eta: 0.5,
            iterations: 4,
            x0,
            observables: vec![Observable::Loss, Observable::XSq],
            diverge_above: 1e12,
        };
        let res = svag_versus_sde(&opt, &settings, &[1, 16], 16, 10_000, 11).unwrap();
        for r in &res {
            eprintln!("{r:?}");
        }
        for r in res.iter().filter(|r| r.l == 16) {
            assert!(r.agrees(), "{r:?}");
        }
    }

    #[test]
    fn svag_l_zero_is_refused_with_its_key() {
        let loss = DiagonalQuadratic::new(vec![1.0]).unwrap();
        let agent = Agent {
            noise: GaussianNoise::isotropic(1, 1.0, 0.0).unwrap().into(),
            compressor: CompressorKind::Identity(Identity),
        };
        let opt =
            Optimizer::new(loss, Dsgd::new(vec![agent]).unwrap(), Schedule::constant()).unwrap();
        let settings = PathSettings {
            eta: 0.1,
            iterations: 1,
            x0: vec![1.0],
            observables: vec![Observable::X],
            diverge_above: 1e12,
        };
        let e = SvagPaths::new(&opt, &settings, 0).err().unwrap();
        assert!(
            matches!(&e, CompareError::BadSetting { field, .. } if field.setting == Setting::SvagL),
            "{e}"
        );
        assert!(e.to_string().contains("svag_l"), "{e}");
    }
}
