//! Learning-rate schedules: the multiplier `η_k` of MATH.md §3 and its continuous form `η_t`.
//!
//! The step actually taken at iteration `k` is `η · η_k` (`η` the base learning rate, also the
//! SDE time step, `t_k = kη`). In continuous time `η_t = φ(t/η)` when `η_k = φ(k)`, so
//! `η_{t_k} = η_k` (§3). Gradient-dependent schedules (§6.3's normalisation, plain normalised
//! SGD) are evaluated at the current state: `η_k` at `‖∇f(x_k)‖`, `η_t` at `‖∇f(X_t)‖`.
//! For SDE (B) with a time-dependent schedule the drift gains `(η/2) η̇_t m` (§5.1), hence
//! [`Schedule::eta_t_dot`]: the time derivative **at fixed state** (zero unless `η_t` depends on
//! `t` explicitly).

use crate::error::{require_len, require_nonnegative, require_positive, ModelError};
use crate::kind::{KeyDoc, KindSpec};
use crate::loss::Smoothness;

/// A scheduler. Build it with the validated constructors ([`Schedule::polynomial`],
/// [`Schedule::normalized`], …), or check a hand-built value with [`Schedule::validate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// `η_k = 1`.
    Constant,
    /// `η_k = (k+1)^{−power}`, `η_t = (t/η + 1)^{−power}`. `power = 1/2` is P1v2's Robbins–Monro
    /// choice `1/√(k+1)` (§3, §8.2).
    Polynomial {
        /// Decay exponent, `≥ 0`.
        power: f64,
    },
    /// A schedule defined on SDE time, independent of the base learning rate:
    /// `η_t = (1 + t/t0)^{−power}`, and iteration `k` (at `t_k = kη`) takes `η_k = η_{t_k}`.
    /// Unlike [`Schedule::Polynomial`], whose `η_t = φ(t/η)` varies on the scale of one step
    /// (`η̇_t = O(1/η)`), this one is smooth on the SDE time scale, so the second-order model (B)
    /// keeps weak order 2 (MATH.md §5.1).
    PolyTime {
        /// Decay exponent, `≥ 0`.
        power: f64,
        /// Time scale `t0 > 0` in SDE time.
        t0: f64,
    },
    /// The normalised schedule of MATH.md §6.3 (tagged \[RECONSTRUCTED\] there: the likely "Eq. 15"):
    /// `η_k = c · 2ε / [(L0 + L1‖∇f‖)(1 + A) + L1·B]`.
    ///
    /// The §6.3 stability condition `η η_t < 2ε / (G_t(1 + A) + L1 B)` then holds (with `‖∇f‖`
    /// in place of its expectation in `G_t`) exactly when `η · c < 1`.
    Normalized {
        /// Safety factor `c > 0`.
        c: f64,
        /// `ε ∈ (0, 1)` of the theorem.
        epsilon: f64,
        /// `L0 ≥ 0`.
        l0: f64,
        /// `L1 ≥ 0`.
        l1: f64,
        /// `A = (ω̄ + d(\overline{σ1²ω} + \overline{σ1²}))/N ≥ 0` (§6.2).
        a: f64,
        /// `B = d(\overline{σ0²} + \overline{σ0²ω})/N ≥ 0` (§6.2).
        b: f64,
    },
    /// Plain normalised SGD, the baseline P1v2 compares against (§3, §8.2):
    /// `η_k = c / max(‖∇f‖, δ)`.
    NormalizedSgd {
        /// Scale `c > 0`.
        c: f64,
        /// Floor `δ > 0` on the gradient norm (keeps the step finite at stationary points).
        delta: f64,
    },
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

impl Schedule {
    /// `η_k = 1`.
    pub fn constant() -> Schedule {
        Schedule::Constant
    }

    /// `η_k = (k+1)^{−power}`, `power ≥ 0` finite.
    pub fn polynomial(power: f64) -> Result<Schedule, ModelError> {
        let s = Schedule::Polynomial { power };
        s.validate()?;
        Ok(s)
    }

    /// `η_t = (1 + t/t0)^{−power}` on SDE time (see [`Schedule::PolyTime`]).
    pub fn poly_time(power: f64, t0: f64) -> Result<Schedule, ModelError> {
        let s = Schedule::PolyTime { power, t0 };
        s.validate()?;
        Ok(s)
    }

    /// §6.3 normalisation with explicit constants (see [`Schedule::Normalized`]).
    pub fn normalized(
        c: f64,
        epsilon: f64,
        l0: f64,
        l1: f64,
        a: f64,
        b: f64,
    ) -> Result<Schedule, ModelError> {
        let s = Schedule::Normalized {
            c,
            epsilon,
            l0,
            l1,
            a,
            b,
        };
        s.validate()?;
        Ok(s)
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

    /// Plain normalised SGD `c / max(‖∇f‖, δ)`, `c > 0`, `δ > 0`.
    pub fn normalized_sgd(c: f64, delta: f64) -> Result<Schedule, ModelError> {
        let s = Schedule::NormalizedSgd { c, delta };
        s.validate()?;
        Ok(s)
    }

    /// Checks the constants: everything finite; `power ≥ 0`; `c > 0`; `ε ∈ (0,1)`;
    /// `L0, L1, A, B ≥ 0` with `L0(1+A) + L1 B > 0` (else `η_k` is infinite at `∇f = 0`);
    /// `δ > 0`. Every valid schedule is finite and `> 0` for every finite gradient norm (the
    /// polynomial one until `(k+1)^{−power}` underflows).
    pub fn validate(&self) -> Result<(), ModelError> {
        match *self {
            Schedule::Constant => Ok(()),
            Schedule::Polynomial { power } => require_nonnegative("power", power).map(|_| ()),
            Schedule::PolyTime { power, t0 } => {
                require_nonnegative("power", power)?;
                require_positive("t0", t0).map(|_| ())
            }
            Schedule::Normalized {
                c,
                epsilon,
                l0,
                l1,
                a,
                b,
            } => {
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
            Schedule::NormalizedSgd { c, delta } => {
                require_positive("c", c)?;
                require_positive("delta", delta)?;
                Ok(())
            }
        }
    }

    /// The multiplier `η_k` at iteration `k`, base learning rate `eta` (iteration `k` sits at SDE
    /// time `kη`, which schedules on SDE time need) and gradient norm `‖∇f(x_k)‖ = grad_norm`.
    #[inline]
    pub fn eta_k(&self, k: u64, eta: f64, grad_norm: f64) -> f64 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Polynomial { power } => ((k as f64) + 1.0).powf(-power),
            Schedule::PolyTime { .. } => self.eta_t(k as f64 * eta, eta, grad_norm),
            _ => self.state_dependent(grad_norm),
        }
    }

    /// The continuous multiplier `η_t = φ(t/η)` (base learning rate `eta > 0`), at gradient norm
    /// `grad_norm`. `η_{kη} = η_k`.
    #[inline]
    pub fn eta_t(&self, t: f64, eta: f64, grad_norm: f64) -> f64 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Polynomial { power } => (t / eta + 1.0).powf(-power),
            Schedule::PolyTime { power, t0 } => (1.0 + t / t0).powf(-power),
            _ => self.state_dependent(grad_norm),
        }
    }

    /// `∂η_t/∂t` at fixed state: `−(power/η)(t/η + 1)^{−power−1}` for [`Schedule::Polynomial`],
    /// 0 for the others (they depend on `t` only through `X_t`).
    #[inline]
    pub fn eta_t_dot(&self, t: f64, eta: f64, _grad_norm: f64) -> f64 {
        match *self {
            Schedule::Polynomial { power } if power != 0.0 => {
                -(power / eta) * (t / eta + 1.0).powf(-power - 1.0)
            }
            Schedule::PolyTime { power, t0 } if power != 0.0 => {
                -(power / t0) * (1.0 + t / t0).powf(-power - 1.0)
            }
            _ => 0.0,
        }
    }

    /// Whether `η_t` is smooth on the SDE time scale, with derivatives bounded independently of
    /// `η`: then the second-order model (B) keeps weak order 2. An iteration-indexed decay
    /// `η_k = φ(k)` read as `η_t = φ(t/η)` is not (`η̇_t = O(1/η)`): (B) is then weak order 1
    /// (MATH.md §5.1, measured slope 1.01–1.08).
    pub fn smooth_on_sde_time(&self) -> bool {
        !matches!(self, Schedule::Polynomial { power } if *power != 0.0)
    }

    /// A short formula for reports.
    pub fn label(&self) -> String {
        match *self {
            Schedule::Constant => "constant".into(),
            Schedule::Polynomial { power } => format!("(k+1)^-{power}"),
            Schedule::PolyTime { power, t0 } => format!("(1 + t/{t0})^-{power}"),
            Schedule::Normalized { c, epsilon, l0, l1, a, b } => format!(
                "normalized: {c}·2·{epsilon} / ((L0 + L1‖∇f‖)(1 + A) + L1·B), L0 = {l0:.3}, L1 = {l1:.3}, A = {a:.3}, B = {b:.3}"
            ),
            Schedule::NormalizedSgd { c, delta } => format!("{c} / max(‖∇f‖, {delta})"),
        }
    }

    /// `true` for the normalised schedules, whose `η_k` depends on `‖∇f‖`.
    pub fn depends_on_gradient(&self) -> bool {
        matches!(
            self,
            Schedule::Normalized { .. } | Schedule::NormalizedSgd { .. }
        )
    }

    #[inline]
    fn state_dependent(&self, grad_norm: f64) -> f64 {
        match *self {
            Schedule::Normalized {
                c,
                epsilon,
                l0,
                l1,
                a,
                b,
            } => c * 2.0 * epsilon / ((l0 + l1 * grad_norm) * (1.0 + a) + l1 * b),
            Schedule::NormalizedSgd { c, delta } => c / grad_norm.max(delta),
            _ => 1.0,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The schedule kinds of a configuration file
// ---------------------------------------------------------------------------------------------

crate::spec_registry! {
    family "schedule", builds Schedule, context Smoothness;
    /// `[schedule]`: the multiplier `η_k` of the base learning rate, built by
    /// [`ScheduleSpec::build`] (the context is the loss's (L0, L1) constants, the defaults of the
    /// normalized schedule's `l0`, `l1`).
    #[derive(Debug, Clone, PartialEq)]
    pub enum ScheduleSpec {
        Constant = "constant" ConstantSpec,
        Poly = "poly" PolySpec,
        PolyTime = "poly_time" PolyTimeSpec,
        Normalized = "normalized" NormalizedSpec,
        NormalizedSgd = "normalized_sgd" NormalizedSgdSpec,
    }
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        ScheduleSpec::Constant(ConstantSpec {})
    }
}

/// `kind = "constant"`.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstantSpec {}

impl KindSpec for ConstantSpec {
    type Output = Schedule;
    type Context = Smoothness;
    const SUMMARY: &'static str = "eta_k = 1";
    const KEYS: &'static [KeyDoc] = &[];
    fn build(&self, _: &Smoothness) -> Result<Schedule, ModelError> {
        Ok(Schedule::constant())
    }
}

/// `kind = "poly"`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolySpec {
    /// Decay exponent.
    pub power: f64,
}

impl KindSpec for PolySpec {
    type Output = Schedule;
    type Context = Smoothness;
    const SUMMARY: &'static str =
        "power >= 0: eta_k = (k+1)^-power (iteration-indexed: (B) is weak order 1 under it)";
    const KEYS: &'static [KeyDoc] = &[KeyDoc {
        key: "power",
        doc: "number >= 0, required: decay exponent (0.5 is P1v2's Robbins-Monro choice)",
    }];
    fn build(&self, _: &Smoothness) -> Result<Schedule, ModelError> {
        Schedule::polynomial(self.power)
    }
}

/// `kind = "poly_time"`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolyTimeSpec {
    /// Decay exponent.
    pub power: f64,
    /// Time scale in SDE time.
    pub t0: f64,
}

impl KindSpec for PolyTimeSpec {
    type Output = Schedule;
    type Context = Smoothness;
    const SUMMARY: &'static str = "power >= 0, t0 > 0: eta_t = (1 + t/t0)^-power on SDE time, eta_k = eta_{k eta} ((B) keeps weak order 2)";
    const KEYS: &'static [KeyDoc] = &[
        KeyDoc {
            key: "power",
            doc: "number >= 0, required: decay exponent",
        },
        KeyDoc {
            key: "t0",
            doc: "number > 0, required: the time scale in SDE time",
        },
    ];
    fn build(&self, _: &Smoothness) -> Result<Schedule, ModelError> {
        Schedule::poly_time(self.power, self.t0)
    }
}

/// `kind = "normalized"`. `l0`, `l1` default to the loss's constants (the build context); `a`,
/// `b` default to values computed from the noise and the compressor by the configuration layer
/// (MATH.md §6.2, [`NormalizationInputs`]), and building needs them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizedSpec {
    /// Overall multiplier.
    pub c: f64,
    /// The `ε` of the condition.
    pub epsilon: f64,
    /// `L0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l0: Option<f64>,
    /// `L1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l1: Option<f64>,
    /// `A`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a: Option<f64>,
    /// `B`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<f64>,
}

impl KindSpec for NormalizedSpec {
    type Output = Schedule;
    type Context = Smoothness;
    const SUMMARY: &'static str =
        "c, epsilon, l0?, l1?, a?, b?: eta_k = c 2 eps / ((L0 + L1 |grad f|)(1 + A) + L1 B)";
    const KEYS: &'static [KeyDoc] = &[
        KeyDoc {
            key: "c",
            doc: "number > 0, required: overall multiplier",
        },
        KeyDoc {
            key: "epsilon",
            doc: "number in (0, 1), required: the epsilon of the condition",
        },
        KeyDoc {
            key: "l0",
            doc: "number >= 0, default from the loss: L0 of (L0, L1)-smoothness",
        },
        KeyDoc {
            key: "l1",
            doc: "number >= 0, default from the loss: L1",
        },
        KeyDoc {
            key: "a",
            doc: "number >= 0, default computed: A = (omega + d (sigma1^2 omega + sigma1^2))/N, agent averages",
        },
        KeyDoc {
            key: "b",
            doc: "number >= 0, default computed: B = d (sigma0^2 + sigma0^2 omega)/N, agent averages",
        },
    ];
    fn build(&self, s: &Smoothness) -> Result<Schedule, ModelError> {
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

/// `kind = "normalized_sgd"`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizedSgdSpec {
    /// Scale.
    pub c: f64,
    /// Floor on the gradient norm.
    pub delta: f64,
}

impl KindSpec for NormalizedSgdSpec {
    type Output = Schedule;
    type Context = Smoothness;
    const SUMMARY: &'static str = "c, delta: eta_k = c / max(|grad f|, delta)";
    const KEYS: &'static [KeyDoc] = &[
        KeyDoc {
            key: "c",
            doc: "number > 0, required",
        },
        KeyDoc {
            key: "delta",
            doc: "number > 0, required: floor on the gradient norm (keeps the step finite at a stationary point)",
        },
    ];
    fn build(&self, _: &Smoothness) -> Result<Schedule, ModelError> {
        Schedule::normalized_sgd(self.c, self.delta)
    }
}
