//! Euler–Maruyama: `X_{n+1} = X_n + a(t_n, X_n) h + b(t_n, X_n) ΔW_n`.
//! Strong order 1/2, weak order 1, every noise shape.

use crate::noise::NoiseShape;
use crate::problem::Sde;
use crate::scheme::{Scheme, SchemeInfo, Step, StepBuffers};

/// The Euler–Maruyama scheme.
#[derive(Clone, Copy, Debug, Default)]
pub struct EulerMaruyama;

impl Scheme for EulerMaruyama {
    type Workspace = StepBuffers;

    fn info(&self) -> SchemeInfo {
        SchemeInfo {
            name: "euler_maruyama",
            strong_order: Some(0.5),
            weak_order: 1.0,
        }
    }
    fn workspace<S: Sde + ?Sized>(&self, sde: &S) -> StepBuffers {
        StepBuffers::new(sde)
    }
    #[inline]
    fn step<S: Sde + ?Sized>(&self, sde: &S, x: &mut [f64], st: Step<'_>, ws: &mut StepBuffers) {
        let Step { t, h, dw, .. } = st;
        if sde.diffusion_mul_is_default() {
            match sde.noise() {
                NoiseShape::Diagonal => return step_fused::<S, true>(sde, t, h, x, dw, ws),
                NoiseShape::Scalar => return step_fused::<S, false>(sde, t, h, x, dw, ws),
                _ => {}
            }
        }
        ws.euler_step(sde, x, t, h, dw);
    }
}

/// Scalar (`DIAG = false`) or diagonal noise with the default [`Sde::diffusion_mul`]: the product
/// `b_i · dw_i` (diagonal) or `b_i · dw_0` (scalar) that `diffusion_mul` would compute is fused
/// into the update, the same numbers without a pass through `bdw`.
#[inline(always)]
fn step_fused<S: Sde + ?Sized, const DIAG: bool>(
    sde: &S,
    t: f64,
    h: f64,
    x: &mut [f64],
    dw: &[f64],
    ws: &mut StepBuffers,
) {
    sde.drift(t, x, &mut ws.a, &mut ws.scratch);
    sde.diffusion(t, x, &mut ws.b, &mut ws.scratch);
    let (a, b) = (&ws.a, &ws.b);
    if DIAG {
        for (((xi, ai), bi), wi) in x.iter_mut().zip(a).zip(b).zip(dw) {
            *xi += ai * h + bi * wi;
        }
    } else {
        let w = dw[0];
        for ((xi, ai), bi) in x.iter_mut().zip(a).zip(b) {
            *xi += ai * h + bi * w;
        }
    }
}
