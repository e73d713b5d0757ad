//! The SDE models (A), (B), (C) of MATH.md §5.1, built generically from an [`Optimizer`].
//!
//! With the effective mean `M(t, x) = η_t(x) m(x)` (the schedule may depend on `‖∇f(x)‖`),
//! base learning rate `η` and covariance `C(x)` of one direction:
//!
//! | model | drift | diffusion |
//! |---|---|---|
//! | (A) first order | `−M` | `η_t sqrt(η) C^{1/2}` |
//! | (B) second order | `−M − (η/2) J_M M + (η/2) ∂_t M` | `η_t sqrt(η) C^{1/2}` |
//! | (C) stability-aware | `−M + (η/2) J_M M` | `η_t sqrt(η) C^{1/2}` |
//!
//! where `J_M M = η_t² J_m m + η_t (∇_x η_t · m) m`. For a time-only schedule the last term
//! vanishes and the table is exactly MATH.md §5.1 (with its [DERIVED] `η̇_t` term in (B)); for a
//! gradient-normalized schedule `∇_x η_t · m = η_t'(‖g‖) gᵀ∇²f m / ‖g‖` (with `g = ∇f(x)`), the
//! derivative of the effective mean that the second-order expansion needs. That extension is
//! this project's derivation (MATH.md marks the scheduled (B)/(C) forms [DERIVED]/[RECONSTRUCTED]).
//! `J_m v = (∂μ/∂g) ∇²f v` needs only Hessian-vector products.

use crate::error::ModelError;
use crate::loss::Loss;
use crate::method::GradientMethod;
use crate::optimizer::{dot, norm, Optimizer};
use crate::schedule::Schedule;
use sde_core::{NoiseShape, Sde};
use serde::{Deserialize, Serialize};

/// Which SDE model of MATH.md §5.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SdeModel {
    /// (A) `dX = −η_t m dt + η_t sqrt(η) C^{1/2} dW`: weak order 1.
    FirstOrder,
    /// (B) the second-order (LTE) model: weak order 2.
    SecondOrder,
    /// (C) the stability-aware first-order model: weak order 1, curvature sign of (B) flipped.
    Stability,
}

impl SdeModel {
    pub const ALL: [SdeModel; 3] = [
        SdeModel::FirstOrder,
        SdeModel::SecondOrder,
        SdeModel::Stability,
    ];

    /// The weak order the model approximates the discrete process with.
    pub fn weak_order(&self) -> f64 {
        match self {
            SdeModel::SecondOrder => 2.0,
            _ => 1.0,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            SdeModel::FirstOrder => "first_order",
            SdeModel::SecondOrder => "second_order",
            SdeModel::Stability => "stability",
        }
    }
}

/// `dη_t/d‖g‖` at fixed `t`: non-zero only for the gradient-normalized schedules.
pub fn schedule_grad_norm_derivative(schedule: &Schedule, t: f64, eta: f64, grad_norm: f64) -> f64 {
    schedule.grad_norm_derivative(t, eta, grad_norm)
}

/// An SDE model of an optimizer at base learning rate `η`, as an `sde_core` problem. Time is
/// SDE time: iteration `k` sits at `t = kη`.
#[derive(Clone, Debug)]
pub struct ModelSde<'a, L, M> {
    opt: &'a Optimizer<L, M>,
    model: SdeModel,
    eta: f64,
    noise: NoiseShape,
    /// The diffusion depends on `t` only (constant covariance, time-only schedule).
    state_independent: bool,
    /// `η_t` depends on `t` only, so `‖∇f‖` is not needed for it.
    time_only: bool,
    /// The diagonal of `C^{1/2}` when it is constant and diagonal (DSGD with gradient-free
    /// noise): computed once here instead of at every diffusion product.
    const_diag: Option<Vec<f64>>,
    /// Whether the method fuses its mean and diagonal factor
    /// ([`GradientMethod::mean_and_cov_sqrt_diag`]): the drift then leaves the diagonal, keyed
    /// on the bits of `∇f(x)`, in a cache of `2d + 1` values at the end of the scratch, and a
    /// diffusion at the same gradient (every scheme evaluates both at `(t, X)`) reuses it.
    fused_diag: bool,
    /// `d`, and the method's scratch plus the wide-noise unit vector: the scratch layout, fixed
    /// at construction so that every coefficient call splits its scratch without asking the
    /// method (an enum dispatch per call, a sizeable part of a d = 3 drift).
    d: usize,
    ms_len: usize,
    /// Whether `η_t` reads `‖∇f‖` ([`Schedule::depends_on_gradient`]).
    grad_schedule: bool,
    /// [`GradientMethod::mean_is_gradient`]: the drift uses `∇f` and `∇²f m` themselves (two
    /// `memcpy` calls per drift at small `d`).
    mean_is_gradient: bool,
}

impl<L: Loss, M: GradientMethod> Optimizer<L, M> {
    /// The SDE `model` of this optimizer at base learning rate `eta`.
    pub fn sde(&self, model: SdeModel, eta: f64) -> Result<ModelSde<'_, L, M>, ModelError> {
        if !(eta > 0.0) || !eta.is_finite() {
            return Err(ModelError::InvalidParameter {
                name: "eta".into(),
                value: eta.to_string(),
                reason: "the learning rate must be positive and finite".into(),
            });
        }
        let method = self.method();
        let time_only = !self.schedule().depends_on_gradient();
        // The diffusion η_t √η C(∇f(x))^{1/2} is free of x when C is constant and η_t depends
        // on t only; its diagonal entry j depends on x_j only when moreover (or instead) C_jj
        // is a function of g_j and g_j of x_j. That is diagonal noise in the Milstein sense;
        // anything else (a diagonal b_jj that depends on the whole state, rand-k's rank-one
        // part) is declared general and non-commutative, so Milstein refuses it instead of
        // returning wrong numbers.
        let state_independent = method.covariance_is_constant() && time_only;
        let diagonal = method.covariance_is_diagonal()
            && time_only
            && (method.covariance_is_constant()
                || (method.covariance_is_coordinatewise() && self.loss().is_separable()));
        let noise = if diagonal {
            NoiseShape::Diagonal
        } else {
            NoiseShape::General {
                m: method.noise_dim(),
                commutative: false,
            }
        };
        let d = self.dim();
        let mut probe = vec![0.0; method.scratch_len().max(2 * d)];
        let mut diag = vec![0.0; d];
        // Any gradient gives the constant factor; g = 0 is always a valid argument.
        let zero = vec![0.0; d];
        let const_diag = (state_independent && method.covariance_is_diagonal()).then(|| {
            method.cov_sqrt_diag(&zero, &mut diag, &mut probe);
            diag.clone()
        });
        let mut mean = vec![0.0; d];
        let fused_diag = !state_independent
            && method.covariance_is_diagonal()
            && method.mean_and_cov_sqrt_diag(&zero, &mut mean, &mut diag, &mut probe);
        // After the method's scratch, a unit vector for a non-square factor (none for square
        // factors, so their scratch layout is unchanged).
        let m = method.noise_dim();
        let ms_len = method.scratch_len() + if m == d { 0 } else { m };
        Ok(ModelSde {
            d,
            ms_len,
            grad_schedule: !time_only,
            mean_is_gradient: method.mean_is_gradient(),
            opt: self,
            model,
            eta,
            noise,
            state_independent,
            time_only,
            const_diag,
            fused_diag,
        })
    }
}

impl<L: Loss, M: GradientMethod> ModelSde<'_, L, M> {
    pub fn model(&self) -> SdeModel {
        self.model
    }
    pub fn eta(&self) -> f64 {
        self.eta
    }
    pub fn optimizer(&self) -> &Optimizer<L, M> {
        self.opt
    }

    /// Splits scratch into five d-vectors and the method's scratch (with the wide-noise unit
    /// vector), and the diagonal cache ([`ModelSde::fused_diag`]; empty otherwise).
    #[inline]
    #[allow(clippy::type_complexity)]
    fn split<'s>(
        &self,
        scratch: &'s mut [f64],
    ) -> (
        &'s mut [f64],
        &'s mut [f64],
        &'s mut [f64],
        &'s mut [f64],
        &'s mut [f64],
        &'s mut [f64],
        &'s mut [f64],
    ) {
        let d = self.d;
        let (g, rest) = scratch.split_at_mut(d);
        let (m, rest) = rest.split_at_mut(d);
        let (hv, rest) = rest.split_at_mut(d);
        let (jm, rest) = rest.split_at_mut(d);
        let (col, rest) = rest.split_at_mut(d);
        let (ms, cache) = rest.split_at_mut(self.ms_len);
        (g, m, hv, jm, col, ms, cache)
    }

    fn cache_len(&self) -> usize {
        if self.fused_diag {
            2 * self.d + 1
        } else {
            0
        }
    }

    /// The diagonal factor the last drift left in `cache`, if it was computed at gradient `g`
    /// (the same bits: the factor is a function of `g` alone).
    #[inline]
    fn cached_diag<'c>(&self, g: &[f64], cache: &'c [f64]) -> Option<&'c [f64]> {
        if !self.fused_diag || cache[0] != 1.0 {
            return None;
        }
        let (key, diag) = cache[1..].split_at(g.len());
        key.iter()
            .zip(g)
            .all(|(k, gi)| k.to_bits() == gi.to_bits())
            .then_some(diag)
    }

    /// `‖g‖` when the schedule reads it; `η_t` of a time-only schedule ignores its argument.
    #[inline]
    fn grad_norm(&self, g: &[f64]) -> f64 {
        if self.time_only {
            0.0
        } else {
            norm(g)
        }
    }

    #[inline]
    fn diffusion_factor(&self, t: f64, grad_norm: f64) -> f64 {
        self.opt.schedule().eta_t(t, self.eta, grad_norm) * self.eta.sqrt()
    }

    /// `out = b(t, x)` with `∇f(x)` already in the scratch's gradient slot (unused for a
    /// constant factor): [`Sde::diffusion`] after its gradient.
    #[inline]
    fn diffusion_at_gradient(&self, t: f64, x: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let d = self.d;
        let (g, _, _, e, col, ms, cache) = self.split(scratch);
        let g: &[f64] = g;
        let method = self.opt.method();
        if let Some(diag) = &self.const_diag {
            let f = self.diffusion_factor(t, 0.0);
            match self.noise {
                NoiseShape::Diagonal => {
                    for (o, c) in out.iter_mut().zip(diag) {
                        *o = c * f;
                    }
                }
                _ => {
                    out.fill(0.0);
                    for (i, c) in diag.iter().enumerate() {
                        out[i * d + i] = f * c;
                    }
                }
            }
            return;
        }
        let f = self.diffusion_factor(t, self.grad_norm(g));
        let cached = self.cached_diag(g, cache);
        match self.noise {
            NoiseShape::Diagonal => {
                match cached {
                    Some(c) => out.copy_from_slice(c),
                    None => method.cov_sqrt_diag(g, out, ms),
                }
                out.iter_mut().for_each(|o| *o *= f);
            }
            _ if method.covariance_is_diagonal() => {
                match cached {
                    Some(c) => col.copy_from_slice(c),
                    None => method.cov_sqrt_diag(g, col, ms),
                }
                out.fill(0.0);
                for i in 0..d {
                    out[i * d + i] = f * col[i];
                }
            }
            _ if method.noise_dim() != d => {
                let m = method.noise_dim();
                let ms_len = method.scratch_len();
                let (ms, unit) = ms.split_at_mut(ms_len);
                let unit = &mut unit[..m];
                for j in 0..m {
                    unit.fill(0.0);
                    unit[j] = 1.0;
                    method.cov_sqrt_mul_at(x, g, unit, col, ms);
                    for i in 0..d {
                        out[i * m + j] = f * col[i];
                    }
                }
            }
            _ => {
                // Dense columns B e_j: only for schemes that need columns (weak order 2).
                for j in 0..d {
                    e.fill(0.0);
                    e[j] = 1.0;
                    method.cov_sqrt_mul(g, e, col, ms);
                    for i in 0..d {
                        out[i * d + j] = f * col[i];
                    }
                }
            }
        }
    }
}

impl<L: Loss, M: GradientMethod> Sde for ModelSde<'_, L, M> {
    fn dim(&self) -> usize {
        self.d
    }
    #[inline]
    fn noise(&self) -> NoiseShape {
        self.noise
    }
    fn scratch_len(&self) -> usize {
        5 * self.d + self.ms_len + self.cache_len()
    }

    fn drift(&self, t: f64, x: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let (g, m, hv, jm, _, ms, cache) = self.split(scratch);
        let (loss, method, schedule) = (self.opt.loss(), self.opt.method(), self.opt.schedule());
        loss.gradient(x, g);
        let gn = self.grad_norm(g);
        let et = schedule.eta_t(t, self.eta, gn);
        if self.fused_diag {
            let (flag, rest) = cache.split_at_mut(1);
            let (key, diag) = rest.split_at_mut(g.len());
            method.mean_and_cov_sqrt_diag(g, m, diag, ms);
            key.copy_from_slice(g);
            flag[0] = 1.0;
        } else if !self.mean_is_gradient {
            method.mean_at(x, g, m, ms);
        }
        let m: &[f64] = if self.mean_is_gradient { g } else { m };
        if self.model == SdeModel::FirstOrder {
            for (o, mi) in out.iter_mut().zip(m.iter()) {
                *o = -et * mi;
            }
            return;
        }
        loss.hessian_vec(x, m, hv);
        let jm: &[f64] = if self.mean_is_gradient {
            hv
        } else {
            method.mean_jvp_at(x, g, hv, jm, ms);
            jm
        };
        // ∇_x η_t · m, for gradient-dependent schedules.
        let grad_term = if self.grad_schedule && gn > 0.0 {
            schedule_grad_norm_derivative(schedule, t, self.eta, gn) * dot(g, hv) / gn
        } else {
            0.0
        };
        let half = 0.5 * self.eta;
        match self.model {
            SdeModel::SecondOrder => {
                let et_dot = schedule.eta_t_dot(t, self.eta, gn);
                for ((o, mi), ji) in out.iter_mut().zip(m.iter()).zip(jm.iter()) {
                    let jmm = et * et * ji + et * grad_term * mi;
                    *o = -et * mi - half * jmm + half * et_dot * mi;
                }
            }
            _ => {
                for ((o, mi), ji) in out.iter_mut().zip(m.iter()).zip(jm.iter()) {
                    let jmm = et * et * ji + et * grad_term * mi;
                    *o = -et * mi + half * jmm;
                }
            }
        }
    }

    fn diffusion(&self, t: f64, x: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        if self.const_diag.is_none() {
            let (g, ..) = self.split(scratch);
            self.opt.loss().gradient(x, g);
        }
        self.diffusion_at_gradient(t, x, out, scratch);
    }

    /// The drift leaves `∇f(x)` in the scratch's gradient slot (its first call, read-only after
    /// it), so the diffusion at the same `x` reads it instead of computing it again: the same
    /// bits, one gradient less per weak-order-2 step.
    #[inline]
    fn drift_and_diffusion(
        &self,
        t: f64,
        x: &[f64],
        a: &mut [f64],
        b: &mut [f64],
        scratch: &mut [f64],
    ) {
        self.drift(t, x, a, scratch);
        self.diffusion_at_gradient(t, x, b, scratch);
    }

    fn diffusion_is_state_independent(&self) -> bool {
        self.state_independent
    }

    #[inline]
    fn diffusion_mul(
        &self,
        t: f64,
        x: &[f64],
        dw: &[f64],
        out: &mut [f64],
        _b: &mut [f64],
        scratch: &mut [f64],
    ) {
        // A diagonal factor (constant, or cached by the drift at this gradient) times `dw`, then
        // `f`: the two roundings of the method's own product followed by the factor.
        if let Some(diag) = &self.const_diag {
            let f = self.diffusion_factor(t, 0.0);
            for ((o, c), w) in out.iter_mut().zip(diag).zip(dw) {
                *o = c * w * f;
            }
            return;
        }
        let (g, _, _, _, _, ms, cache) = self.split(scratch);
        self.opt.loss().gradient(x, g);
        let f = self.diffusion_factor(t, self.grad_norm(g));
        match self.cached_diag(g, cache) {
            Some(diag) => {
                for ((o, c), w) in out.iter_mut().zip(diag).zip(dw) {
                    *o = c * w * f;
                }
            }
            None => {
                self.opt.method().cov_sqrt_mul_at(x, g, dw, out, ms);
                out.iter_mut().for_each(|o| *o *= f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Identity;
    use crate::loss::MixedQuadraticQuartic;
    use crate::method::{Agent, Dsgd, DsignSgd};
    use crate::noise::{GaussianNoise, NoiseModel, StudentTNoise};

    fn agents(noise: impl Fn(f64) -> NoiseModel) -> Vec<Agent> {
        (0..4)
            .map(|i| Agent {
                noise: noise(0.5 + 0.25 * f64::from(i)),
                compressor: Identity.into(),
            })
            .collect()
    }

    fn opt<M: GradientMethod>(
        d: usize,
        method: M,
        schedule: Schedule,
    ) -> Optimizer<MixedQuadraticQuartic, M> {
        Optimizer::new(
            MixedQuadraticQuartic::new(vec![1.0; d], vec![0.5; d]).unwrap(),
            method,
            schedule,
        )
        .unwrap()
    }

    /// The diffusion product and matrix of `sde` at `(t, x)` against the method's own calls, bit
    /// for bit: after a drift at the same state (the cache holds the diagonal), after a drift
    /// elsewhere (it does not), and with a fresh scratch.
    fn check_against_method<L: Loss, M: GradientMethod>(sde: &ModelSde<'_, L, M>) {
        let d = sde.dim();
        let o = sde.optimizer();
        let (t, eta) = (0.3, sde.eta());
        let dw: Vec<f64> = (0..d).map(|j| 0.3 - 0.17 * j as f64).collect();
        let len = sde.noise().diffusion_len(d);
        for x in [vec![0.4; d], (0..d).map(|j| 1.0 - 0.3 * j as f64).collect()] {
            let mut g = vec![0.0; d];
            o.loss().gradient(&x, &mut g);
            let f = o.schedule().eta_t(t, eta, norm(&g)) * eta.sqrt();
            let mut ms = vec![0.0; o.method().scratch_len()];
            let mut want = vec![0.0; d];
            o.method().cov_sqrt_mul(&g, &dw, &mut want, &mut ms);
            want.iter_mut().for_each(|w| *w *= f);
            let mut diag = vec![0.0; d];
            o.method().cov_sqrt_diag(&g, &mut diag, &mut ms);
            let mut mean = vec![0.0; d];
            o.method().mean(&g, &mut mean, &mut ms);
            let et = o.schedule().eta_t(t, eta, norm(&g));
            let elsewhere = vec![-0.7; d];
            for drift_at in [Some(&x), Some(&elsewhere), None] {
                let mut scratch = vec![0.0; sde.scratch_len()];
                let mut a = vec![0.0; d];
                if let Some(y) = drift_at {
                    sde.drift(t, y, &mut a, &mut scratch);
                }
                if drift_at == Some(&x) && sde.model() == SdeModel::FirstOrder {
                    for (ai, mi) in a.iter().zip(&mean) {
                        assert_eq!(ai.to_bits(), (-et * mi).to_bits());
                    }
                }
                let (mut got, mut b) = (vec![0.0; d], vec![0.0; len]);
                sde.diffusion_mul(t, &x, &dw, &mut got, &mut b, &mut scratch);
                for (gi, wi) in got.iter().zip(&want) {
                    assert_eq!(gi.to_bits(), wi.to_bits(), "{got:?} vs {want:?}");
                }
                sde.diffusion(t, &x, &mut b, &mut scratch);
                for i in 0..d {
                    let bi = match sde.noise() {
                        NoiseShape::Diagonal => b[i],
                        _ => b[i * d + i],
                    };
                    assert_eq!(bi.to_bits(), (f * diag[i]).to_bits());
                }
            }
        }
    }

    /// The sign mean's per-ν closed forms against the general route, bit for bit.
    #[test]
    fn integer_nu_sign_means_have_the_bits_of_xi() {
        use crate::noise::GradientNoise;
        use crate::special::xi;
        let d = 7;
        let g: Vec<f64> = (0..d).map(|j| -3.0 + 1.1 * j as f64).collect();
        for nu in [1.0, 2.0, 3.0, 4.0, 5.0] {
            let noise = StudentTNoise::isotropic(d, nu, 0.7, 0.2).unwrap();
            let (mut m, mut s) = (vec![0.0; d], vec![0.0; d]);
            noise.sign_mean(&g, &mut m);
            noise.scale(&g, &mut s);
            for ((mj, gj), sj) in m.iter().zip(&g).zip(&s) {
                assert_eq!(mj.to_bits(), (2.0 * xi(nu, gj / sj)).to_bits(), "nu = {nu}");
            }
        }
    }

    #[test]
    fn the_fused_sign_mean_has_the_bits_of_the_two_calls() {
        let d = 5;
        for nu in [3.0, 2.5] {
            let m = DsignSgd::new(agents(|s| {
                StudentTNoise::isotropic(d, nu, s, 0.2).unwrap().into()
            }))
            .unwrap();
            let mut s = vec![0.0; m.scratch_len()];
            let g: Vec<f64> = (0..d).map(|j| 0.9 - 0.45 * j as f64).collect();
            let (mut mean, mut diag, mut m2, mut d2) =
                (vec![0.0; d], vec![0.0; d], vec![0.0; d], vec![0.0; d]);
            assert!(m.mean_and_cov_sqrt_diag(&g, &mut mean, &mut diag, &mut s));
            m.mean(&g, &mut m2, &mut s);
            m.cov_sqrt_diag(&g, &mut d2, &mut s);
            assert_eq!(mean, m2);
            assert_eq!(diag, d2);
        }
    }

    /// DSGD's and DCSGD's drifts, which read `∇f` as the mean, against the same models taking
    /// the copies of the methods' `mean` and `mean_jvp`, bit for bit, for every model and
    /// schedule.
    #[test]
    fn the_gradient_as_mean_keeps_the_drifts_bits() {
        use crate::compress::BernoulliSparsifier;
        use crate::method::Dcsgd;
        let d = 3;
        let gauss = |s: f64| GaussianNoise::isotropic(d, s, 0.1).unwrap().into();
        let bern = |s: f64| Agent {
            noise: gauss(s),
            compressor: BernoulliSparsifier::new(0.5).unwrap().into(),
        };
        let schedules = [
            Schedule::constant(),
            Schedule::normalized_sgd(0.5, 0.1).unwrap(),
        ];
        for schedule in schedules {
            let sgd = opt(d, Dsgd::new(agents(gauss)).unwrap(), schedule);
            let dc_agents = (0..3).map(|i| bern(0.4 + 0.2 * f64::from(i))).collect();
            let dc = opt(d, Dcsgd::new(dc_agents).unwrap(), schedule);
            for model in SdeModel::ALL {
                check_gradient_as_mean(&mut sgd.sde(model, 0.1).unwrap());
                check_gradient_as_mean(&mut dc.sde(model, 0.1).unwrap());
            }
        }
    }

    fn check_gradient_as_mean<L: Loss, M: GradientMethod>(sde: &mut ModelSde<'_, L, M>) {
        assert!(sde.mean_is_gradient);
        let fast = sde.drift_at(0.3);
        sde.mean_is_gradient = false;
        let copied = sde.drift_at(0.3);
        for (a, b) in fast.iter().zip(&copied) {
            assert_eq!(a.to_bits(), b.to_bits(), "{fast:?} vs {copied:?}");
        }
    }

    impl<L: Loss, M: GradientMethod> ModelSde<'_, L, M> {
        /// The drift at `t` and two states, concatenated (test helper).
        fn drift_at(&self, t: f64) -> Vec<f64> {
            let d = self.dim();
            let mut scratch = vec![0.0; self.scratch_len()];
            let mut out = Vec::new();
            for x in [vec![0.4; d], (0..d).map(|j| 1.0 - 0.7 * j as f64).collect()] {
                let mut a = vec![0.0; d];
                self.drift(t, &x, &mut a, &mut scratch);
                out.extend(a);
            }
            out
        }
    }

    /// `drift_and_diffusion` (the diffusion reads the drift's gradient) against `drift` then
    /// `diffusion`, bit for bit, for every model, both schedules, constant and
    /// gradient-dependent noise, and DSGD, DCSGD (Bernoulli) and DSignSGD.
    #[test]
    fn drift_and_diffusion_has_the_bits_of_the_two_calls() {
        use crate::compress::BernoulliSparsifier;
        use crate::method::Dcsgd;
        fn check<L: Loss, M: GradientMethod>(o: &Optimizer<L, M>) {
            let d = o.dim();
            for model in SdeModel::ALL {
                let sde = o.sde(model, 0.1).unwrap();
                let len = sde.noise().diffusion_len(d);
                for x in [vec![0.4; d], (0..d).map(|j| 1.0 - 0.7 * j as f64).collect()] {
                    let mut want = (vec![0.0; d], vec![0.0; len]);
                    let mut got = (vec![0.0; d], vec![0.0; len]);
                    let mut scratch = vec![0.0; sde.scratch_len()];
                    sde.drift(0.3, &x, &mut want.0, &mut scratch);
                    sde.diffusion(0.3, &x, &mut want.1, &mut scratch);
                    let mut scratch = vec![0.0; sde.scratch_len()];
                    sde.drift_and_diffusion(0.3, &x, &mut got.0, &mut got.1, &mut scratch);
                    for (w, g) in want.0.iter().chain(&want.1).zip(got.0.iter().chain(&got.1)) {
                        assert_eq!(w.to_bits(), g.to_bits(), "{want:?} vs {got:?}");
                    }
                }
            }
        }
        let d = 3;
        let schedules = [
            Schedule::constant(),
            Schedule::normalized_sgd(0.5, 0.1).unwrap(),
        ];
        for schedule in schedules {
            for sigma1 in [0.0, 0.3] {
                let gauss = |s: f64| GaussianNoise::isotropic(d, s, sigma1).unwrap().into();
                let bern = |s: f64| Agent {
                    noise: gauss(s),
                    compressor: BernoulliSparsifier::new(0.5).unwrap().into(),
                };
                check(&opt(d, Dsgd::new(agents(gauss)).unwrap(), schedule));
                let dc = (0..3).map(|i| bern(0.4 + 0.2 * f64::from(i))).collect();
                check(&opt(d, Dcsgd::new(dc).unwrap(), schedule));
                let t3 = |s: f64| StudentTNoise::isotropic(d, 3.0, s, sigma1).unwrap().into();
                check(&opt(d, DsignSgd::new(agents(t3)).unwrap(), schedule));
            }
        }
    }

    #[test]
    fn cached_and_constant_diagonals_keep_the_bits() {
        let d = 4;
        let schedules = [
            Schedule::constant(),
            Schedule::normalized_sgd(0.5, 0.1).unwrap(),
        ];
        for schedule in schedules {
            for sigma1 in [0.0, 0.3] {
                let sign = opt(
                    d,
                    DsignSgd::new(agents(|s| {
                        StudentTNoise::isotropic(d, 3.0, s, sigma1).unwrap().into()
                    }))
                    .unwrap(),
                    schedule,
                );
                let sgd = opt(
                    d,
                    Dsgd::new(agents(|s| {
                        GaussianNoise::isotropic(d, s, sigma1).unwrap().into()
                    }))
                    .unwrap(),
                    schedule,
                );
                for model in SdeModel::ALL {
                    let a = sign.sde(model, 0.1).unwrap();
                    assert!(a.fused_diag);
                    check_against_method(&a);
                    let b = sgd.sde(model, 0.1).unwrap();
                    let constant = sigma1 == 0.0 && !schedule.depends_on_gradient();
                    assert_eq!(b.const_diag.is_some(), constant);
                    check_against_method(&b);
                }
            }
        }
    }
}
