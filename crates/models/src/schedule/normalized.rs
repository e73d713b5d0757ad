//! `kind = "normalized"`: the normalised schedule of MATH.md §6.3 and the §6.2 constants `A`, `B`
//! it is built from.

use super::{checked, LearningRate, Schedule};
use crate::error::{require_len, require_nonnegative, require_positive, ModelError};
use crate::loss::Smoothness;

/// The normalised schedule of MATH.md §6.3 (tagged \[RECONSTRUCTED\] there: the likely "Eq. 15"):
/// `η_k = c · 2ε / [(L0 + L1‖∇f‖)(1 + A) + L1·B]`.
///
/// The §6.3 stability condition `η η_t < 2ε / (G_t(1 + A) + L1 B)` then holds (with `‖∇f‖`
/// in place of its expectation in `G_t`) exactly when `η · c < 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalized {
    /// Safety factor `c > 0`.
    pub c: f64,
    /// `ε ∈ (0, 1)` of the theorem.
    pub epsilon: f64,
    /// `L0 ≥ 0`.
    pub l0: f64,
    /// `L1 ≥ 0`.
    pub l1: f64,
    /// `A = (ω̄ + d(\overline{σ1²ω} + \overline{σ1²}))/N ≥ 0` (§6.2).
    pub a: f64,
    /// `B = d(\overline{σ0²} + \overline{σ0²ω})/N ≥ 0` (§6.2).
    pub b: f64,
}

impl Normalized {
    /// `(L0 + L1‖∇f‖)(1 + A) + L1·B`.
    #[inline]
    fn denominator(&self, grad_norm: f64) -> f64 {
        (self.l0 + self.l1 * grad_norm) * (1.0 + self.a) + self.l1 * self.b
    }
}

impl LearningRate for Normalized {
    /// `c > 0`, `ε ∈ (0,1)`, `L0, L1, A, B ≥ 0` with `L0(1+A) + L1 B > 0` (else `η_k` is
    /// infinite at `∇f = 0`).
    fn validate(&self) -> Result<(), ModelError> {
        let Normalized {
            c,
            epsilon,
            l0,
            l1,
            a,
            b,
        } = *self;
        require_positive("c", c)?;
        if !(epsilon.is_finite() && epsilon > 0.0 && epsilon < 1.0) {
            return Err(ModelError::invalid("epsilon", epsilon, "must be in (0, 1)"));
        }
        require_nonnegative("l0", l0)?;
        require_nonnegative("l1", l1)?;
        require_nonnegative("a", a)?;
        require_nonnegative("b", b)?;
        let floor = l0 * (1.0 + a) + l1 * b;
        if floor > 0.0 && floor.is_finite() {
            Ok(())
        } else {
            Err(ModelError::invalid(
                "l0",
                l0,
                format!(
                    "the denominator (L0 + L1|grad|)(1 + A) + L1 B must stay > 0; at grad = 0 it is \
                     L0(1 + A) + L1 B = {floor} (need l0 > 0, or l1 > 0 and b > 0)"
                ),
            ))
        }
    }

    #[inline]
    fn eta_t(&self, _t: f64, _eta: f64, grad_norm: f64) -> f64 {
        self.c * 2.0 * self.epsilon / self.denominator(grad_norm)
    }

    /// `η = c·2ε / den`  ⇒  `dη/dn = −η L1 (1 + A) / den`.
    #[inline]
    fn grad_norm_derivative(&self, t: f64, eta: f64, grad_norm: f64) -> f64 {
        let e = self.eta_t(t, eta, grad_norm);
        let den_over = self.l1 * (1.0 + self.a);
        if den_over == 0.0 {
            0.0
        } else {
            -e * den_over / self.denominator(grad_norm)
        }
    }

    fn depends_on_gradient(&self) -> bool {
        true
    }

    fn label(&self) -> String {
        let Normalized {
            c,
            epsilon,
            l0,
            l1,
            a,
            b,
        } = *self;
        format!(
            "normalized: {c}·2·{epsilon} / ((L0 + L1‖∇f‖)(1 + A) + L1·B), L0 = {l0:.3}, L1 = {l1:.3}, A = {a:.3}, B = {b:.3}"
        )
    }
}

impl Schedule {
    /// §6.3 normalisation with explicit constants (see [`Normalized`]).
    pub fn normalized(
        c: f64,
        epsilon: f64,
        l0: f64,
        l1: f64,
        a: f64,
        b: f64,
    ) -> Result<Schedule, ModelError> {
        checked(Normalized {
            c,
            epsilon,
            l0,
            l1,
            a,
            b,
        })
    }

    /// §6.3 normalisation with `A`, `B` computed from the agent averages as in §6.2.
    pub fn normalized_for(
        c: f64,
        epsilon: f64,
        l0: f64,
        l1: f64,
        inputs: &NormalizationInputs,
    ) -> Result<Schedule, ModelError> {
        inputs.validate()?;
        Schedule::normalized(c, epsilon, l0, l1, inputs.a(), inputs.b())
    }
}

/// Agent-averaged noise and compression constants from which §6.2 builds `A` and `B`.
/// Overlines are averages over the `N` agents (MATH.md §1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormalizationInputs {
    /// `ω̄ = (1/N) Σ_i ω_i`.
    pub omega_bar: f64,
    /// `\overline{σ1²}`.
    pub sigma1_sq: f64,
    /// `\overline{σ1²ω} = (1/N) Σ_i σ_{1,i}² ω_i`.
    pub sigma1_sq_omega: f64,
    /// `\overline{σ0²}`.
    pub sigma0_sq: f64,
    /// `\overline{σ0²ω}`.
    pub sigma0_sq_omega: f64,
    /// Number of agents `N ≥ 1`.
    pub n_agents: usize,
    /// Dimension `d ≥ 1`.
    pub dim: usize,
}

impl NormalizationInputs {
    /// Averages from per-agent `ω_i`, `σ_{0,i}`, `σ_{1,i}` (equal lengths `N ≥ 1`).
    pub fn from_agents(
        dim: usize,
        omega: &[f64],
        sigma0: &[f64],
        sigma1: &[f64],
    ) -> Result<Self, ModelError> {
        let n = omega.len();
        if n == 0 {
            return Err(ModelError::invalid(
                "omega",
                "[]",
                "need at least one agent",
            ));
        }
        require_len("sigma0", n, sigma0.len())?;
        require_len("sigma1", n, sigma1.len())?;
        let mut acc = [0.0f64; 5];
        for i in 0..n {
            let w = require_nonnegative(&format!("omega[{i}]"), omega[i])?;
            let s0 = require_nonnegative(&format!("sigma0[{i}]"), sigma0[i])?;
            let s1 = require_nonnegative(&format!("sigma1[{i}]"), sigma1[i])?;
            acc[0] += w;
            acc[1] += s1 * s1;
            acc[2] += s1 * s1 * w;
            acc[3] += s0 * s0;
            acc[4] += s0 * s0 * w;
        }
        let inv = 1.0 / n as f64;
        let inputs = NormalizationInputs {
            omega_bar: acc[0] * inv,
            sigma1_sq: acc[1] * inv,
            sigma1_sq_omega: acc[2] * inv,
            sigma0_sq: acc[3] * inv,
            sigma0_sq_omega: acc[4] * inv,
            n_agents: n,
            dim,
        };
        inputs.validate()?;
        Ok(inputs)
    }

    /// Checks every field (finite, `≥ 0`, `N ≥ 1`, `d ≥ 1`).
    pub fn validate(&self) -> Result<(), ModelError> {
        require_nonnegative("omega_bar", self.omega_bar)?;
        require_nonnegative("sigma1_sq", self.sigma1_sq)?;
        require_nonnegative("sigma1_sq_omega", self.sigma1_sq_omega)?;
        require_nonnegative("sigma0_sq", self.sigma0_sq)?;
        require_nonnegative("sigma0_sq_omega", self.sigma0_sq_omega)?;
        if self.n_agents == 0 {
            return Err(ModelError::invalid(
                "n_agents",
                0,
                "need at least one agent",
            ));
        }
        if self.dim == 0 {
            return Err(ModelError::invalid("dim", 0, "dimension must be >= 1"));
        }
        Ok(())
    }

    /// `A = (ω̄ + d(\overline{σ1²ω} + \overline{σ1²}))/N` (MATH.md §6.2).
    pub fn a(&self) -> f64 {
        (self.omega_bar + self.dim as f64 * (self.sigma1_sq_omega + self.sigma1_sq))
            / self.n_agents as f64
    }

    /// `B = d(\overline{σ0²} + \overline{σ0²ω})/N` (MATH.md §6.2).
    pub fn b(&self) -> f64 {
        self.dim as f64 * (self.sigma0_sq + self.sigma0_sq_omega) / self.n_agents as f64
    }
}

crate::kind_spec! {
    /// `kind = "normalized"`. `l0`, `l1` default to the loss's constants (the build context);
    /// `a`, `b` default to values computed from the noise and the compressor by the
    /// configuration layer (MATH.md §6.2, [`NormalizationInputs`]), and building needs them.
    #[derive(Copy)]
    pub struct NormalizedSpec: KindSpec<Output = Schedule, Context = Smoothness> {
        /// Overall multiplier.
        pub c: f64 => "number > 0, required: overall multiplier",
        /// The `ε` of the condition.
        pub epsilon: f64 => "number in (0, 1), required: the epsilon of the condition",
        /// `L0`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub l0: Option<f64> => "number >= 0, default from the loss: L0 of (L0, L1)-smoothness",
        /// `L1`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub l1: Option<f64> => "number >= 0, default from the loss: L1",
        /// `A`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub a: Option<f64> => "number >= 0, default computed: A = (omega + d (sigma1^2 omega + sigma1^2))/N, agent averages",
        /// `B`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub b: Option<f64> => "number >= 0, default computed: B = d (sigma0^2 + sigma0^2 omega)/N, agent averages",
    }
    summary "c, epsilon, l0?, l1?, a?, b?: eta_k = c 2 eps / ((L0 + L1 |grad f|)(1 + A) + L1 B)";
    build(self, s) {
        let missing = |k: &str| ModelError::invalid(k, "(missing)", "needs a value");
        Schedule::normalized(
            self.c,
            self.epsilon,
            self.l0.unwrap_or(s.l0),
            self.l1.unwrap_or(s.l1),
            self.a.ok_or_else(|| missing("a"))?,
            self.b.ok_or_else(|| missing("b"))?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        // c·2ε / [(L0 + L1 g)(1 + A) + L1 B] = 0.5 · 1 / [(4 + 2)·3 + 3] = 0.5/21.
        let n = Schedule::normalized(0.5, 0.5, 4.0, 1.0, 2.0, 3.0).unwrap();
        assert!((n.eta_k(5, 0.1, 2.0) - 0.5 / 21.0).abs() <= 1e-16);
        assert_eq!(n.eta_t(123.0, 0.01, 2.0), n.eta_k(7, 0.1, 2.0));
        assert_eq!(n.eta_t_dot(1.0, 0.1, 2.0), 0.0);
        assert!(n.depends_on_gradient() && n.smooth_on_sde_time());
        // dη/dg = −c·2ε·L1(1 + A)/den² = −0.5 · 3 / 21² at g = 2.
        let d = n.grad_norm_derivative(0.0, 0.1, 2.0);
        assert!((d + 1.5 / 441.0).abs() <= 1e-17, "{d}");
        // L1 = 0: no dependence on the gradient norm.
        let flat = Schedule::normalized(0.5, 0.5, 4.0, 0.0, 2.0, 3.0).unwrap();
        assert_eq!(flat.grad_norm_derivative(0.0, 0.1, 2.0), 0.0);
    }

    #[test]
    fn normalization_constants_from_agents() {
        // N = 2, d = 3, ω = (1, 3), σ0 = (0.5, 1), σ1 = (0.2, 0.4):
        // ω̄ = 2, σ1² = 0.1, σ1²ω = 0.26, σ0² = 0.625, σ0²ω = 1.625;
        // A = (2 + 3(0.26 + 0.1))/2 = 1.54, B = 3(0.625 + 1.625)/2 = 3.375.
        let inp =
            NormalizationInputs::from_agents(3, &[1.0, 3.0], &[0.5, 1.0], &[0.2, 0.4]).unwrap();
        assert!((inp.omega_bar - 2.0).abs() <= 1e-15);
        assert!((inp.sigma1_sq - 0.1).abs() <= 1e-15);
        assert!((inp.sigma1_sq_omega - 0.26).abs() <= 1e-15);
        assert!((inp.sigma0_sq - 0.625).abs() <= 1e-15);
        assert!((inp.sigma0_sq_omega - 1.625).abs() <= 1e-15);
        assert!((inp.a() - 1.54).abs() <= 1e-14);
        assert!((inp.b() - 3.375).abs() <= 1e-14);
        let Schedule::Normalized(s) = Schedule::normalized_for(0.8, 0.5, 2.0, 1.0, &inp).unwrap()
        else {
            panic!("expected Normalized")
        };
        assert!((s.a - 1.54).abs() <= 1e-14 && (s.b - 3.375).abs() <= 1e-14);
        // GD limit (§6.3): no noise, no compression, L1 = 0 → η_k = 2εc/L0.
        let gd = NormalizationInputs::from_agents(4, &[0.0; 8], &[0.0; 8], &[0.0; 8]).unwrap();
        assert_eq!((gd.a(), gd.b()), (0.0, 0.0));
        let s = Schedule::normalized_for(1.0, 0.5, 4.0, 0.0, &gd).unwrap();
        assert!((s.eta_k(0, 0.1, 123.0) - 0.25).abs() <= 1e-16);
    }

    /// The §6.3 condition `η η_t < 2ε / ((L0 + L1‖∇f‖)(1 + A) + L1 B)` holds exactly when
    /// `η c < 1`.
    #[test]
    fn meets_the_stability_condition_iff_eta_c_below_one() {
        let (eps, l0, l1, a, b) = (0.5, 4.0, 1.0, 1.54, 3.375);
        for c in [0.5, 1.0, 2.0] {
            let s = Schedule::normalized(c, eps, l0, l1, a, b).unwrap();
            for eta in [0.1, 0.49, 0.51, 0.99, 1.01] {
                for g in [0.0, 0.3, 10.0, 1e4] {
                    let lhs = eta * s.eta_k(0, eta, g);
                    let rhs = 2.0 * eps / ((l0 + l1 * g) * (1.0 + a) + l1 * b);
                    assert_eq!(lhs < rhs, eta * c < 1.0, "c={c} eta={eta} g={g}");
                }
            }
        }
    }

    #[test]
    fn invalid_constants_are_rejected() {
        for (args, key) in [
            ([0.0, 0.5, 1.0, 1.0, 0.0, 0.0], "c"),
            ([1.0, 0.0, 1.0, 1.0, 0.0, 0.0], "epsilon"),
            ([1.0, 1.0, 1.0, 1.0, 0.0, 0.0], "epsilon"),
            ([1.0, 0.5, -1.0, 1.0, 0.0, 0.0], "l0"),
            ([1.0, 0.5, 1.0, -1.0, 0.0, 0.0], "l1"),
            ([1.0, 0.5, 1.0, 1.0, -0.1, 0.0], "a"),
            ([1.0, 0.5, 1.0, 1.0, 0.0, f64::NAN], "b"),
        ] {
            let [c, epsilon, l0, l1, a, b] = args;
            let e = Schedule::normalized(c, epsilon, l0, l1, a, b).unwrap_err();
            assert_eq!(e.name(), key, "{args:?}");
        }
        // Infinite at ∇f = 0: L0 = 0 and L1·B = 0.
        let e = Schedule::normalized(1.0, 0.5, 0.0, 1.0, 2.0, 0.0).unwrap_err();
        assert!(e.to_string().contains("must stay > 0"), "{e}");
        assert!(Schedule::normalized(1.0, 0.5, 0.0, 1.0, 2.0, 0.1).is_ok());
        // Agent averages.
        assert!(NormalizationInputs::from_agents(3, &[], &[], &[]).is_err());
        assert_eq!(
            NormalizationInputs::from_agents(3, &[1.0, 2.0], &[0.1], &[0.1, 0.2]).unwrap_err(),
            ModelError::DimensionMismatch {
                name: "sigma0".into(),
                expected: 2,
                got: 1
            }
        );
        let e = NormalizationInputs::from_agents(3, &[1.0, -2.0], &[0.1; 2], &[0.1; 2]);
        assert_eq!(e.unwrap_err().name(), "omega[1]");
        assert!(NormalizationInputs::from_agents(0, &[1.0], &[0.1], &[0.1]).is_err());
        let bad = NormalizationInputs {
            omega_bar: 1.0,
            sigma1_sq: 0.0,
            sigma1_sq_omega: 0.0,
            sigma0_sq: 0.0,
            sigma0_sq_omega: 0.0,
            n_agents: 0,
            dim: 2,
        };
        assert!(Schedule::normalized_for(1.0, 0.5, 1.0, 0.0, &bad).is_err());
    }
}
