//! The time grid and the solver: a scheme, an increment source and a problem checked together.

use crate::error::SdeError;
use crate::increments::Increments;
use crate::problem::Sde;
use crate::rng::PathRng;
use crate::scheme::{Scheme, Step};

/// A fixed-step grid `t_i = t0 + i h`, `i = 0..=steps`, saving every `save_every` steps
/// (save point `s` is step `s · save_every`; save point 0 is the initial state).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Grid {
    pub t0: f64,
    pub h: f64,
    pub steps: usize,
    pub save_every: usize,
}

impl Grid {
    /// `steps` equal steps from `t0` to `t1`, saving at every step.
    pub fn new(t0: f64, t1: f64, steps: usize) -> Result<Self, SdeError> {
        if !t0.is_finite() {
            return Err(SdeError::invalid("t0", t0, "must be finite"));
        }
        if !(t1 > t0) || !t1.is_finite() {
            return Err(SdeError::invalid("t1", t1, "must be finite and after t0"));
        }
        if steps == 0 {
            return Err(SdeError::invalid("steps", steps, "must be at least 1"));
        }
        Self::with_step(t0, (t1 - t0) / steps as f64, steps)
    }

    /// `steps` steps of length `h` from `t0`, saving at every step.
    pub fn with_step(t0: f64, h: f64, steps: usize) -> Result<Self, SdeError> {
        if !(h > 0.0) || !h.is_finite() {
            return Err(SdeError::invalid(
                "h",
                h,
                "the step must be positive and finite",
            ));
        }
        if steps == 0 {
            return Err(SdeError::invalid("steps", steps, "must be at least 1"));
        }
        Ok(Grid {
            t0,
            h,
            steps,
            save_every: 1,
        })
    }

    /// Saves every `k` steps; `k` must divide the number of steps so the last step is saved.
    pub fn save_every(mut self, k: usize) -> Result<Self, SdeError> {
        if k == 0 || !self.steps.is_multiple_of(k) {
            return Err(SdeError::invalid(
                "save_every",
                k,
                "must be a positive divisor of the number of steps",
            ));
        }
        self.save_every = k;
        Ok(self)
    }

    /// Saves only the initial and the final state.
    pub fn save_final(self) -> Self {
        Grid {
            save_every: self.steps,
            ..self
        }
    }

    /// Number of save points, the initial state included.
    pub fn n_save(&self) -> usize {
        self.steps / self.save_every + 1
    }

    /// Time of step `i`.
    #[inline]
    pub fn time(&self, i: usize) -> f64 {
        self.t0 + i as f64 * self.h
    }

    /// Times of the save points.
    pub fn save_times(&self) -> Vec<f64> {
        (0..self.n_save())
            .map(|s| self.time(s * self.save_every))
            .collect()
    }
}

/// A problem, a scheme and an increment source that were checked to fit together.
///
/// ```
/// use sde_core::{EulerMaruyama, Gaussian, Grid, NoiseShape, SdeFn, Solver, derive_stream};
/// let ou = SdeFn::new(
///     2,
///     NoiseShape::Diagonal,
///     |_t, x: &[f64], a: &mut [f64]| { a[0] = -x[0]; a[1] = -2.0 * x[1]; },
///     |_t, _x: &[f64], b: &mut [f64]| b.fill(0.1),
/// ).unwrap();
/// let solver = Solver::new(&ou, EulerMaruyama, Gaussian).unwrap();
/// let grid = Grid::new(0.0, 1.0, 100).unwrap();
/// let mut ws = solver.workspace();
/// let mut x = [1.0, 1.0];
/// let mut rng = derive_stream(42, 0);
/// solver.solve(&mut x, &grid, &mut rng, &mut ws, |_s, _t, _x| true);
/// assert!(x[0].is_finite());
/// ```
#[derive(Clone)]
pub struct Solver<S, Sch, I> {
    sde: S,
    scheme: Sch,
    increments: I,
}

/// Buffers of one path: the scheme's workspace and the increment.
pub struct SolverWorkspace<W> {
    pub scheme: W,
    pub dw: Vec<f64>,
}

impl<S: Sde, Sch: Scheme, I: Increments> Solver<S, Sch, I> {
    /// Checks that `scheme` supports the noise of `sde` and that `increments` are fine enough
    /// for the scheme's weak order.
    pub fn new(sde: S, scheme: Sch, increments: I) -> Result<Self, SdeError> {
        scheme.check(&sde)?;
        if I::WEAK_ORDER < scheme.weak_order() {
            return Err(SdeError::IncrementsTooCoarse {
                scheme: scheme.name(),
                weak_order: scheme.weak_order(),
                increments: I::NAME,
                increment_order: I::WEAK_ORDER,
            });
        }
        Ok(Solver {
            sde,
            scheme,
            increments,
        })
    }

    pub fn sde(&self) -> &S {
        &self.sde
    }
    pub fn scheme(&self) -> &Sch {
        &self.scheme
    }
    pub fn increments(&self) -> &I {
        &self.increments
    }

    /// Buffers for one path (allocate once, reuse for every path of a chunk).
    pub fn workspace(&self) -> SolverWorkspace<Sch::Workspace> {
        SolverWorkspace {
            scheme: self.scheme.workspace(&self.sde),
            dw: vec![0.0; self.sde.noise().noise_dim(self.sde.dim())],
        }
    }

    /// Checks that `x` has the problem's dimension.
    pub fn check_state(&self, x: &[f64]) -> Result<(), SdeError> {
        SdeError::check_len("x0", self.sde.dim(), x.len())
    }

    /// One step from `t` to `t + h` with a fresh increment.
    #[inline]
    pub fn step(
        &self,
        t: f64,
        h: f64,
        x: &mut [f64],
        rng: &mut PathRng,
        ws: &mut SolverWorkspace<Sch::Workspace>,
    ) {
        self.increments.draw(rng, h, &mut ws.dw);
        let step = Step::new(t, h, &ws.dw, rng);
        self.scheme.step(&self.sde, x, step, &mut ws.scheme);
    }

    /// One step with a given increment `dw` (length `m`), for callers that draw or couple the
    /// Brownian increments themselves (common random numbers between two processes).
    #[inline]
    pub fn step_with(
        &self,
        t: f64,
        h: f64,
        x: &mut [f64],
        dw: &[f64],
        rng: &mut PathRng,
        ws: &mut SolverWorkspace<Sch::Workspace>,
    ) {
        let step = Step::new(t, h, dw, rng);
        self.scheme.step(&self.sde, x, step, &mut ws.scheme);
    }

    /// Integrates `x` over `grid`, calling `on_save(s, t, x)` at every save point (the initial
    /// one included). Stops early when `on_save` returns `false`; returns the number of save
    /// points visited with `on_save` returning `true`.
    #[inline]
    pub fn solve<F>(
        &self,
        x: &mut [f64],
        grid: &Grid,
        rng: &mut PathRng,
        ws: &mut SolverWorkspace<Sch::Workspace>,
        mut on_save: F,
    ) -> usize
    where
        F: FnMut(usize, f64, &[f64]) -> bool,
    {
        if !on_save(0, grid.t0, x) {
            return 0;
        }
        let mut i = 0;
        for s in 1..grid.n_save() {
            for _ in 0..grid.save_every {
                self.step(grid.time(i), grid.h, x, rng, ws);
                i += 1;
            }
            if !on_save(s, grid.time(i), x) {
                return s;
            }
        }
        grid.n_save()
    }
}
