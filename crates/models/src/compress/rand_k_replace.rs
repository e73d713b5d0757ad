//! rand-k **with replacement**: the whole definition of one compressor kind (implementation, spec,
//! tests) in one file, registered by one line in `compress.rs` (`docs/ADDING_A_KIND.md`).
//!
//! Draw `k` coordinates `J_1, …, J_k` independently and uniformly from the `d`, and send
//! `C(v) = (d/k) Σ_l v_{J_l} e_{J_l}` (a coordinate drawn twice counts twice). Each term
//! `X_l = d v_J e_J` has `E X_l = v` and `E X_l X_lᵀ = d diag(v∘v)`, so `C = (1/k) Σ_l X_l` is
//! unbiased with `Cov_ξ C(v) = (d diag(v∘v) − v vᵀ)/k` and `ω = (d − 1)/k` (equality). With
//! `v = ∇f + Z`, `E_Z diag(v∘v) = diag(∇f² + σ²)` and `E_Z vvᵀ = ∇f∇fᵀ + Σ` (MATH.md §5.3):
//! `Σ_C = diag(σ² + (d(∇f² + σ²) − σ²)/k) − (1/k) ∇f∇fᵀ`, exact, diagonal minus rank one.
//! Unlike rand-k without replacement, `k` may exceed `d` (then `ω < 1` keeps falling as `1/k`).

use super::{check_pair, uniform, Compressor};
use crate::error::ModelError;
use sde_core::PathRng;

/// rand-k with replacement, built for dimension `d`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandKReplace {
    k: usize,
    d: usize,
}

impl RandKReplace {
    /// `k ≥ 1` draws, dimension `d ≥ 1`.
    pub fn new(k: usize, d: usize) -> Result<Self, ModelError> {
        if d == 0 {
            return Err(ModelError::invalid("d", d, "dimension must be >= 1"));
        }
        if k == 0 {
            return Err(ModelError::invalid("k", k, "must be >= 1 (draws)"));
        }
        Ok(RandKReplace { k, d })
    }
}

impl Compressor for RandKReplace {
    fn compress(&self, v: &[f64], rng: &mut PathRng, out: &mut [f64]) {
        check_pair(v, out);
        assert_eq!(v.len(), self.d, "rand-k built for d = {}", self.d);
        out.fill(0.0);
        let factor = self.d as f64 / self.k as f64;
        for _ in 0..self.k {
            // 53-bit uniform in [0, 1): the index is uniform on 0..d (`min` only guards rounding).
            let j = ((uniform(rng) * self.d as f64) as usize).min(self.d - 1);
            out[j] += factor * v[j];
        }
    }
    fn omega(&self, _d: usize) -> f64 {
        (self.d - 1) as f64 / self.k as f64
    }
    fn covariance_parts(&self, grad: &[f64], noise_var: &[f64], diag: &mut [f64]) -> f64 {
        check_pair(grad, noise_var);
        check_pair(grad, diag);
        let (d, inv_k) = (self.d as f64, 1.0 / self.k as f64);
        for ((o, g), s) in diag.iter_mut().zip(grad).zip(noise_var) {
            *o = s + (d * (g * g + s) - s) * inv_k;
        }
        inv_k
    }
    fn covariance_is_diagonal(&self) -> bool {
        false
    }
    fn name(&self) -> &'static str {
        "rand_k_replace"
    }
}

crate::kind_spec! {
    /// `kind = "rand_k_replace"`.
    #[derive(Copy)]
    pub struct RandKReplaceSpec: KindSpec<Output = RandKReplace, Context = usize> {
        /// Coordinates drawn (with replacement).
        pub k: usize => "integer >= 1, required: coordinates drawn uniformly with replacement",
    }
    summary "k >= 1 draws with replacement: omega = (d-1)/k";
    build(self, d) { RandKReplace::new(self.k, *d) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::DiagMinusRankOne;
    use rand::RngExt;
    use rand_distr::StandardNormal;

    #[test]
    fn rejects_zero_draws() {
        assert!(RandKReplace::new(0, 3).is_err());
        assert!(RandKReplace::new(5, 3).is_ok());
    }

    /// Monte Carlo: `C(∇f + Z)` has mean `∇f` and covariance `Σ_C` (the law of total
    /// covariance: `Cov C(∇f + Z) = Σ + E_Z Cov_ξ C`), each entry within 5 standard errors.
    #[test]
    fn mean_and_covariance_match_the_closed_form() {
        let (d, k, n) = (4usize, 3usize, 400_000usize);
        let c = RandKReplace::new(k, d).expect("valid");
        let grad = [1.0, -2.0, 0.5, 0.0];
        let sd = [0.3, 0.0, 1.0, 0.5];
        let var: Vec<f64> = sd.iter().map(|s| s * s).collect();
        let mut exact = DiagMinusRankOne::zeros(d);
        c.covariance(&grad, &var, &mut exact);
        let exact = exact.to_dense();
        let mut rng = sde_core::derive_stream(17, 0);
        let (mut v, mut out) = (vec![0.0; d], vec![0.0; d]);
        let mut s1 = vec![0.0; d];
        let mut s2 = vec![0.0; d * d];
        let mut s4 = vec![0.0; d * d];
        for _ in 0..n {
            for j in 0..d {
                let z: f64 = rng.sample(StandardNormal);
                v[j] = grad[j] + sd[j] * z;
            }
            c.compress(&v, &mut rng, &mut out);
            for i in 0..d {
                s1[i] += out[i];
                for j in 0..d {
                    let p = (out[i] - grad[i]) * (out[j] - grad[j]);
                    s2[i * d + j] += p;
                    s4[i * d + j] += p * p;
                }
            }
        }
        let nf = n as f64;
        for i in 0..d {
            let mean = s1[i] / nf;
            let se = (s2[i * d + i] / nf / nf).sqrt();
            assert!((mean - grad[i]).abs() < 5.0 * se, "mean[{i}] = {mean}");
            for j in 0..d {
                let m = s2[i * d + j] / nf;
                let se = ((s4[i * d + j] / nf - m * m) / nf).sqrt();
                assert!(
                    (m - exact[i][j]).abs() < 5.0 * se + 1e-12,
                    "cov[{i}][{j}] = {m}, closed form {}, se {se}",
                    exact[i][j]
                );
            }
        }
        // Noise-free: the trace is omega |v|^2 exactly (the variance bound holds with equality).
        let mut zero = DiagMinusRankOne::zeros(d);
        c.covariance(&grad, &[0.0; 4], &mut zero);
        let norm2: f64 = grad.iter().map(|g| g * g).sum();
        assert!((zero.trace() - c.omega(d) * norm2).abs() < 1e-12);
    }
}
