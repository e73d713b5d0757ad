//! Theorem-shaped checks (MATH.md §6): the numbers behind `results/theorems/`.
//!
//! - [`step_condition_sweep`]: sharpness of the step-size condition of §6.3,
//!   `η η_t < 2ε / (G_t (1 + A) + L1 B)`. On the isotropic parabola `f = λ‖x‖²/2` with
//!   multiplicative noise (`σ0 = 0`, so `B = 0`; `L1 = 0`) the normalized schedule is a constant
//!   step `s = κ · 2/(λ(1 + A))` with `κ = c ε`, and the second moment has closed forms: discrete
//!   `E‖∇f(x_K)‖² / ‖∇f(x0)‖² = q^K`, `q = (1 − u)² + u² A` with `u = sλ`; model (C)
//!   `exp(K(−2u + u²(1 + A)))`; model (A) `exp(K(−2u + u² A))` (one iteration is SDE time
//!   `η = 1`). Discrete and (C) grow exactly when `κ > 1`: the condition is sharp (in the limit
//!   `ε → 1`) for the quantity the bound is about; (A) only when `κ > (1 + A)/A`.
//! - [`sign_decay`]: DSignSGD under a Robbins–Monro schedule `η_k = (k+1)^{-p}`. Along model
//!   (A) (MATH.md §6.2, Student-t noise of scale `s`), Itô's formula, the sign-descent lemma
//!   `g · 2Ξ_ν(g/s) ≥ ℓ_ν min(g²/s, |g|)` (§5.4, candidate (b), [RECONSTRUCTED] as the paper's
//!   constant), `Tr(C ∇²f) ≤ (L0 + L1‖∇f‖) d/N` and `‖∇f‖ ≤ d s + Φ` give, with
//!   `Φ(x) = Σ_j min(∂_j f²/s, |∂_j f|)` and `ε = max_t η η_t L1 d/(2N ℓ_ν) < 1`,
//!   `∫η_t EΦ(X_t) dt / ∫η_t dt ≤ [f(x0) − f* + (η d/(2N))(L0 + L1 d s) ∫η_t² dt]
//!   / ((1 − ε) ℓ_ν ∫η_t dt)`.
//!   The shape (a transient `1/∫η` plus a floor `∝ ∫η²/∫η`) is that of §6.2, [RECONSTRUCTED];
//!   the constants are this derivation's, not the paper's. The left side is the expectation at
//!   the random time `t̂` of density `η_t/∫η`, estimated per path (so its interval is valid).

use crate::error::{CompareError, Setting};
use crate::inference::wilson95;
use crate::observable::Observable;
use crate::study::Progress;
use crate::trajectory::{trajectories, TrajectorySettings};
use models::loss::{DiagonalQuadratic, Loss, LossKind, MixedQuadraticQuartic};
use models::method::{Agent, Dsgd, DsignSgd, GradientMethod, Method};
use models::noise::{GaussianNoise, NoiseModel, StudentTNoise};
use models::optimizer::{Optimizer, StepWorkspace};
use models::schedule::{NormalizationInputs, Schedule};
use models::sde::SdeModel;
use models::special::sign_chord;
use models::{CompressorKind, Identity};
use sde_core::stats::Z95;
use sde_core::{
    derive_key, Ensemble, Gaussian, IncrementKind, PathInput, PathSimulation, SchemeKind, Solver,
    SolverWorkspace,
};
use serde::Serialize;

/// Settings of the §6.3 sweep (DSGD on `f = λ‖x‖²/2`, `N` agents with `Cov Z = σ1²‖∇f‖² I`).
#[derive(Clone, Debug, Serialize)]
pub struct StepConditionSettings {
    pub dim: usize,
    pub agents: usize,
    pub lambda: f64,
    pub sigma1: f64,
    /// `ε` of the schedule; the multiplier swept is `c = κ/ε`.
    pub epsilon: f64,
    /// Steps relative to the bound, `κ = c ε`.
    pub kappas: Vec<f64>,
    pub iterations: usize,
    pub paths: u64,
    pub seed: u64,
    /// SDE substeps per iteration (Euler–Maruyama; the reference for the simulated SDE is the
    /// exact expectation of that Euler chain, so the integrator's bias is accounted for).
    pub substeps: usize,
}

impl Default for StepConditionSettings {
    fn default() -> Self {
        StepConditionSettings {
            dim: 10,
            agents: 8,
            lambda: 1.0,
            sigma1: 0.2,
            epsilon: 0.5,
            kappas: vec![0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2],
            iterations: 20,
            paths: 10_000,
            seed: 3,
            substeps: 16,
        }
    }
}

/// One process at one `κ`.
#[derive(Clone, Debug, Serialize)]
pub struct StepConditionPoint {
    pub kappa: f64,
    /// The schedule's multiplier `c = κ/ε`.
    pub c: f64,
    /// The step `η η_k` (η = 1).
    pub step: f64,
    /// `discrete`, `first_order` (A), `stability` (C).
    pub process: String,
    /// Monte Carlo `E‖∇f(x_K)‖² / ‖∇f(x0)‖²` and its 95% half-width.
    pub ratio: f64,
    pub ratio_ci95: f64,
    /// Closed form of the process (the SDE itself, not its Euler chain).
    pub exact: f64,
    /// Exact expectation of what was simulated (the Euler chain for the SDEs; = `exact` for the
    /// discrete method).
    pub exact_simulated: f64,
    /// `"decrease"` (interval below 1), `"growth"` (above 1) or `"undecided"`.
    pub verdict: &'static str,
    /// Paths diverged (loss above 1e8 or not finite) and their Wilson interval.
    pub diverged: u64,
    pub diverged_ci95: [f64; 2],
}

#[derive(Clone, Debug, Serialize)]
pub struct StepConditionReport {
    pub settings: StepConditionSettings,
    /// `A = d σ1²/N` (§6.2 with ω = 0).
    pub a: f64,
    /// `κ` where each process switches from decrease to growth of `E‖∇f‖²` (closed form).
    pub threshold_discrete: f64,
    pub threshold_stability: f64,
    pub threshold_first_order: f64,
    pub points: Vec<StepConditionPoint>,
}

fn verdict(ratio: f64, half: f64) -> &'static str {
    if ratio + half < 1.0 {
        "decrease"
    } else if ratio - half > 1.0 {
        "growth"
    } else {
        "undecided"
    }
}

/// Runs the §6.3 sweep: for each `κ`, the discrete method and models (A), (C).
pub fn step_condition_sweep(
    s: &StepConditionSettings,
    progress: Progress,
) -> Result<StepConditionReport, CompareError> {
    if s.dim == 0 || s.agents == 0 {
        return Err(CompareError::bad(
            Setting::Dim,
            s.dim.min(s.agents),
            "must be at least 1",
        ));
    }
    if !(s.epsilon > 0.0 && s.epsilon < 1.0) {
        return Err(CompareError::bad(
            Setting::Epsilon,
            s.epsilon,
            "must lie in (0, 1)",
        ));
    }
    let (d, n) = (s.dim, s.agents);
    let a = d as f64 * s.sigma1 * s.sigma1 / n as f64;
    let loss: LossKind = DiagonalQuadratic::new(vec![s.lambda; d])?.into();
    let agents = vec![
        Agent {
            noise: NoiseModel::Gaussian(GaussianNoise::isotropic(d, 0.0, s.sigma1)?),
            compressor: CompressorKind::Identity(Identity),
        };
        n
    ];
    let inputs =
        NormalizationInputs::from_agents(d, &vec![0.0; n], &vec![0.0; n], &vec![s.sigma1; n])?;
    let sm = loss.smoothness();
    let mut points = Vec::new();
    for (i, &kappa) in s.kappas.iter().enumerate() {
        if !(kappa > 0.0) || !kappa.is_finite() {
            return Err(CompareError::bad(
                Setting::Kappas.at(i),
                kappa,
                "must be positive",
            ));
        }
        let c = kappa / s.epsilon;
        let schedule = Schedule::normalized_for(c, s.epsilon, sm.l0, sm.l1, &inputs)?;
        let opt = Optimizer::new(
            loss.clone(),
            Method::Dsgd(Dsgd::new(agents.clone())?),
            schedule,
        )?;
        let step = opt.schedule().eta_k(0, 1.0, 0.0);
        let settings = TrajectorySettings {
            eta: 1.0,
            horizon: s.iterations as f64,
            paths: s.paths,
            quantile_paths: 0,
            quantiles: vec![],
            seed: derive_key(s.seed, i as u64),
            x0: vec![1.0; d],
            models: vec![SdeModel::FirstOrder, SdeModel::Stability],
            scheme: SchemeKind::EulerMaruyama,
            increments: IncrementKind::Gaussian,
            substeps: s.substeps,
            observables: vec![Observable::GradNormSq],
            diverge_above: 1e8,
        };
        let report = trajectories(&opt, &settings, progress)?;
        let g0 = s.lambda * s.lambda * d as f64;
        let u = step * s.lambda;
        let k = s.iterations as f64;
        let q = (1.0 - u).powi(2) + u * u * a;
        let h = 1.0 / s.substeps as f64;
        // Euler chain of dX = r X dt + (noise of variance v‖X‖² per unit time): one substep
        // multiplies E‖X‖² by (1 + h r)² + h v.
        let euler = |r: f64, v: f64| ((1.0 + h * r).powi(2) + h * v).powf(k * s.substeps as f64);
        let procs = [
            (
                "discrete".to_string(),
                &report.discrete,
                q.powf(k),
                q.powf(k),
            ),
            (
                "first_order".to_string(),
                &report.models[0].1,
                (k * (-2.0 * u + u * u * a)).exp(),
                euler(-u, u * u * a),
            ),
            (
                "stability".to_string(),
                &report.models[1].1,
                (k * (-2.0 * u + u * u * (1.0 + a))).exp(),
                euler(-u + 0.5 * u * u, u * u * a),
            ),
        ];
        for (process, t, exact, exact_simulated) in procs {
            let band = t.band(Observable::GradNormSq).ok_or_else(|| {
                CompareError::bad(Setting::Observables, "grad_norm_sq", "missing")
            })?;
            let last = s.iterations;
            let (ratio, half) = (band.mean[last] / g0, band.ci95[last] / g0);
            let diverged = t.diverged[last];
            points.push(StepConditionPoint {
                kappa,
                c,
                step,
                process,
                ratio,
                ratio_ci95: half,
                exact,
                exact_simulated,
                verdict: verdict(ratio, half),
                diverged,
                diverged_ci95: wilson95(diverged, s.paths),
            });
        }
    }
    Ok(StepConditionReport {
        settings: s.clone(),
        a,
        threshold_discrete: 1.0,
        threshold_stability: 1.0,
        threshold_first_order: if a > 0.0 {
            (1.0 + a) / a
        } else {
            f64::INFINITY
        },
        points,
    })
}

/// Settings of the DSignSGD decay check (mixed loss `Σ (x_j²/2 + x_j⁴/4)`, Student-t noise).
#[derive(Clone, Debug, Serialize)]
pub struct SignDecaySettings {
    pub dim: usize,
    pub agents: usize,
    pub nu: f64,
    /// Noise scale `s` of every coordinate.
    pub scale: f64,
    /// `η_k = (k+1)^{-power}`.
    pub power: f64,
    pub eta: f64,
    pub x0: f64,
    /// Iteration counts `K` at which the random-time average is reported.
    pub checkpoints: Vec<usize>,
    pub paths: u64,
    pub seed: u64,
    /// Substeps of model (A), integrated by `adaptive_em`.
    pub substeps: usize,
}

impl Default for SignDecaySettings {
    fn default() -> Self {
        SignDecaySettings {
            dim: 4,
            agents: 4,
            nu: 1.0,
            scale: 1.0,
            power: 0.5,
            eta: 0.1,
            x0: 2.0,
            checkpoints: vec![25, 50, 100, 200, 400, 800, 1600],
            paths: 2000,
            seed: 4,
            substeps: 4,
        }
    }
}

/// One process at one horizon.
#[derive(Clone, Debug, Serialize)]
pub struct SignDecayPoint {
    pub process: String,
    pub iterations: usize,
    /// `T = Kη`.
    pub horizon: f64,
    /// `∫η_t dt` and `∫η_t² dt` over `[0, T]`, as the left sums `η Σ_{k<K} η_k^{1,2}` that
    /// weight the iterates.
    pub int_eta: f64,
    pub int_eta_sq: f64,
    /// `∫η² / ∫η`, the floor term's shape.
    pub floor_shape: f64,
    /// `E Φ(x_t̂)`: the `η_k`-weighted mean of `Φ(x_k)`, `k < K`, averaged over paths, and its
    /// 95% half-width.
    pub lhs: f64,
    pub lhs_ci95: f64,
    /// The same weighting of `‖∇f‖²`.
    pub grad_norm_sq: f64,
    pub grad_norm_sq_ci95: f64,
    /// The derived bound for model (A) (module docs), [RECONSTRUCTED] shape.
    pub bound: f64,
    /// Its floor part alone, `(η d/(2N))(L0 + L1 d s) ∫η² / ((1 − ε) ℓ_ν ∫η)`.
    pub bound_floor: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SignDecayReport {
    pub settings: SignDecaySettings,
    /// `ℓ_ν = 2Ξ_ν(1)` (candidate (b), [RECONSTRUCTED]).
    pub ell_nu: f64,
    pub l0: f64,
    pub l1: f64,
    /// `max_t η η_t L1 d/(2N ℓ_ν)`: the condition of the bound needs it below 1.
    pub epsilon: f64,
    pub points: Vec<SignDecayPoint>,
    /// Least-squares slope of `log lhs` on `log(∫η²/∫η)` over the last four checkpoints, per
    /// process (1 = the floor's rate).
    pub slopes: Vec<(String, f64)>,
}

/// `Φ(x) = Σ_j min(g_j²/s, |g_j|)` and `‖g‖²`.
fn phi(g: &[f64], s: f64) -> (f64, f64) {
    g.iter().fold((0.0, 0.0), |(p, n2), gj| {
        (p + (gj * gj / s).min(gj.abs()), n2 + gj * gj)
    })
}

struct SignPaths<'a, L, M> {
    opt: &'a Optimizer<L, M>,
    sde: Option<Solver<models::sde::ModelSde<'a, L, M>, sde_core::AdaptiveEm, Gaussian>>,
    s: &'a SignDecaySettings,
    iterations: usize,
}

struct SignWorkspace {
    x: Vec<f64>,
    g: Vec<f64>,
    step: StepWorkspace,
    solver: Option<SolverWorkspace<sde_core::AdaptiveEmWorkspace>>,
}

impl<L: Loss, M: GradientMethod> PathSimulation for SignPaths<'_, L, M> {
    type Workspace = SignWorkspace;
    fn workspace(&self) -> SignWorkspace {
        SignWorkspace {
            x: vec![self.s.x0; self.s.dim],
            g: vec![0.0; self.s.dim],
            step: self.opt.workspace(),
            solver: self.sde.as_ref().map(|s| s.workspace()),
        }
    }
    fn n_save(&self) -> usize {
        self.s.checkpoints.len()
    }
    fn n_observables(&self) -> usize {
        2
    }
    fn simulate(&self, path: PathInput<'_>, ws: &mut SignWorkspace, out: &mut [f64]) -> usize {
        let rng = path.rng;
        let (s, eta) = (self.s, self.s.eta);
        ws.x.fill(s.x0);
        let loss = self.opt.loss();
        let (mut wsum, mut acc_phi, mut acc_g2) = (0.0, 0.0, 0.0);
        let mut next = 0;
        let sub = s.substeps;
        let h = eta / sub as f64;
        for k in 0..self.iterations {
            loss.gradient(&ws.x, &mut ws.g);
            let (p, g2) = phi(&ws.g, s.scale);
            if !(p.is_finite() && g2.is_finite()) {
                return next;
            }
            let w = self.opt.schedule().eta_k(k as u64, eta, g2.sqrt());
            wsum += w;
            acc_phi += w * p;
            acc_g2 += w * g2;
            match (&self.sde, &mut ws.solver) {
                (Some(solver), Some(sw)) => {
                    for j in 0..sub {
                        let t = (k * sub + j) as f64 * h;
                        solver.step(t, h, &mut ws.x, rng, sw);
                    }
                }
                _ => {
                    self.opt.step(k as u64, eta, &mut ws.x, rng, &mut ws.step);
                }
            }
            if k + 1 == s.checkpoints[next] {
                out[2 * next] = acc_phi / wsum;
                out[2 * next + 1] = acc_g2 / wsum;
                next += 1;
            }
        }
        next
    }
}

/// Runs the DSignSGD decay check for the discrete method and model (A).
pub fn sign_decay(
    s: &SignDecaySettings,
    progress: Progress,
) -> Result<SignDecayReport, CompareError> {
    if s.checkpoints.is_empty()
        || s.checkpoints.windows(2).any(|w| w[0] >= w[1])
        || s.checkpoints[0] == 0
    {
        return Err(CompareError::bad(
            Setting::Checkpoints,
            format!("{:?}", s.checkpoints),
            "must be increasing positive iteration counts",
        ));
    }
    if s.substeps == 0 {
        return Err(CompareError::bad(
            Setting::Substeps,
            0,
            "must be at least 1",
        ));
    }
    let (d, n) = (s.dim, s.agents);
    let loss: LossKind = MixedQuadraticQuartic::new(vec![1.0; d], vec![1.0; d])?.into();
    let agents = vec![
        Agent {
            noise: NoiseModel::StudentT(StudentTNoise::isotropic(d, s.nu, s.scale, 0.0)?),
            compressor: CompressorKind::Identity(Identity),
        };
        n
    ];
    let opt = Optimizer::new(
        loss.clone(),
        Method::DsignSgd(DsignSgd::new(agents)?),
        Schedule::polynomial(s.power)?,
    )?;
    let sm = loss.smoothness();
    let ell = sign_chord(s.nu);
    let epsilon = s.eta * sm.l1 * d as f64 / (2.0 * n as f64 * ell);
    let kmax = *s.checkpoints.last().unwrap_or(&1);
    let f0 = loss.value(&vec![s.x0; d]) - loss.minimum().unwrap_or(0.0);
    let mut points = Vec::new();
    let mut slopes = Vec::new();
    for (pi, process) in ["discrete", "first_order"].into_iter().enumerate() {
        let sde = if pi == 0 {
            None
        } else {
            Some(Solver::new(
                opt.sde(SdeModel::FirstOrder, s.eta)?,
                sde_core::AdaptiveEm::default(),
                Gaussian,
            )?)
        };
        let sim = SignPaths {
            opt: &opt,
            sde,
            s,
            iterations: kmax,
        };
        let done = std::sync::atomic::AtomicU64::new(0);
        let report = |x: u64| {
            let prev = done.swap(x, std::sync::atomic::Ordering::Relaxed);
            if x > prev {
                progress(x - prev);
            }
        };
        let stats =
            Ensemble::new(s.paths, derive_key(s.seed, pi as u64))?.run_with_progress(&sim, &report);
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for (c, &kk) in s.checkpoints.iter().enumerate() {
            let (mut ie, mut ie2) = (0.0, 0.0);
            for k in 0..kk {
                let w = opt.schedule().eta_k(k as u64, s.eta, 0.0);
                ie += s.eta * w;
                ie2 += s.eta * w * w;
            }
            let lhs = stats.summary(c, 0);
            let g2 = stats.summary(c, 1);
            let floor =
                (s.eta * d as f64 / (2.0 * n as f64)) * (sm.l0 + sm.l1 * d as f64 * s.scale) * ie2
                    / ((1.0 - epsilon) * ell * ie);
            let bound = f0 / ((1.0 - epsilon) * ell * ie) + floor;
            if c + 4 >= s.checkpoints.len() {
                xs.push((ie2 / ie).ln());
                ys.push(lhs.mean.ln());
            }
            points.push(SignDecayPoint {
                process: process.to_string(),
                iterations: kk,
                horizon: kk as f64 * s.eta,
                int_eta: ie,
                int_eta_sq: ie2,
                floor_shape: ie2 / ie,
                lhs: lhs.mean,
                lhs_ci95: lhs.std_err * Z95,
                grad_norm_sq: g2.mean,
                grad_norm_sq_ci95: g2.std_err * Z95,
                bound,
                bound_floor: floor,
            });
        }
        if let Some(fit) = sde_core::fit_line(&xs, &ys) {
            slopes.push((process.to_string(), fit.slope));
        }
    }
    Ok(SignDecayReport {
        settings: s.clone(),
        ell_nu: ell,
        l0: sm.l0,
        l1: sm.l1,
        epsilon,
        points,
        slopes,
    })
}
