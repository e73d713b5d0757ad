//! The cheaper noise declarations of the SDE models change the work, not the numbers: one
//! weak-2 step of the model as declared (`Diagonal`, possibly state-independent) equals, to
//! rounding, the step of the same coefficients declared `General { m: d }` with a dense
//! diffusion, for every `(x, ΔŴ)` tried. Equal step maps (for any `V`, whose terms vanish for
//! diagonal noise) give equal expectations, so the weak-order tests of the general path carry
//! over. (For a state-independent diffusion with a time-dependent schedule the additive step
//! differs from the general one by `O(h²)` per step, keeping weak order 2: sde-core's tests.)

use models::compress::{BernoulliSparsifier, CompressorKind, Identity};
use models::loss::MixedQuadraticQuartic;
use models::method::{Agent, Dcsgd, Dsgd, DsignSgd, GradientMethod};
use models::noise::{GaussianNoise, NoiseModel, StudentTNoise};
use models::optimizer::Optimizer;
use models::schedule::Schedule;
use models::sde::SdeModel;
use sde_core::{derive_stream, NoiseShape, PlatenWeak2, Scheme, Sde, Step};

/// The same SDE declared general, non-commutative, state-dependent, dense `d × d` diffusion.
struct AsGeneral<'a, S>(&'a S);

impl<S: Sde> Sde for AsGeneral<'_, S> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn noise(&self) -> NoiseShape {
        NoiseShape::General {
            m: self.0.dim(),
            commutative: false,
        }
    }
    fn scratch_len(&self) -> usize {
        self.0.scratch_len()
    }
    fn drift(&self, t: f64, x: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        self.0.drift(t, x, out, scratch)
    }
    fn diffusion(&self, t: f64, x: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        assert_eq!(self.0.noise(), NoiseShape::Diagonal);
        let d = self.dim();
        self.0.diffusion(t, x, &mut out[..d], scratch);
        out[d..].fill(0.0);
        for i in (1..d).rev() {
            out[i * d + i] = out[i];
            out[i] = 0.0;
        }
    }
    fn diffusion_mul(
        &self,
        t: f64,
        x: &[f64],
        dw: &[f64],
        out: &mut [f64],
        b: &mut [f64],
        scratch: &mut [f64],
    ) {
        let d = self.dim();
        self.0.diffusion_mul(t, x, dw, out, &mut b[..d], scratch)
    }
}

fn agents(d: usize, student_nu: Option<f64>, compressor: CompressorKind) -> Vec<Agent> {
    (0..3)
        .map(|i| {
            let scale: Vec<f64> = (0..d).map(|j| 0.5 + 0.3 * ((i + j) % 3) as f64).collect();
            let noise: NoiseModel = match student_nu {
                Some(nu) => StudentTNoise::new(d, nu, scale, 0.8, 0.0).unwrap().into(),
                None => GaussianNoise::new(d, scale, 0.8, 0.0).unwrap().into(),
            };
            Agent { noise, compressor }
        })
        .collect()
}

fn check<M: GradientMethod>(name: &str, method: M, schedule: Schedule, independent: bool) {
    let d = 4;
    let opt = Optimizer::new(
        MixedQuadraticQuartic::new(vec![1.0, 0.5, 2.0, 0.3], vec![1.0, 1.0, 0.5, 0.2]).unwrap(),
        method,
        schedule,
    )
    .unwrap();
    for model in SdeModel::ALL {
        let sde = opt.sde(model, 0.05).unwrap();
        assert_eq!(sde.noise(), NoiseShape::Diagonal, "{name}");
        assert_eq!(sde.diffusion_is_state_independent(), independent, "{name}");
        let general = AsGeneral(&sde);
        let mut ws = PlatenWeak2.workspace(&sde);
        let mut wg = PlatenWeak2.workspace(&general);
        let mut rng = derive_stream(17, 0);
        for k in 0..20 {
            let x: Vec<f64> = (0..d).map(|_| 2.0 * rng.random::<f64>() - 1.0).collect();
            let h = 0.01 * (1.0 + k as f64);
            let dw: Vec<f64> = (0..d)
                .map(|_| h.sqrt() * (2.0 * rng.random::<f64>() - 1.0) * 2.0)
                .collect();
            let t = 0.1 * k as f64;
            let (mut xs, mut xg) = (x.clone(), x.clone());
            let mut r1 = derive_stream(5, k);
            PlatenWeak2.step(
                &sde,
                &mut xs,
                Step::new(t, h, &dw, &mut r1.clone()),
                &mut ws,
            );
            PlatenWeak2.step(&general, &mut xg, Step::new(t, h, &dw, &mut r1), &mut wg);
            for j in 0..d {
                // The general formula adds 4m products whose b(t, X) parts cancel: rounding of
                // a few ulp of the noise terms (|b ΔŴ| ≲ 0.1 here).
                assert!(
                    (xs[j] - xg[j]).abs() <= 1e-14 * (1.0 + x[j].abs()),
                    "{name} {model:?}, step {k}, {j}: {} vs {}",
                    xs[j],
                    xg[j]
                );
            }
        }
    }
}

use rand::RngExt;

#[test]
fn diagonal_declarations_give_the_general_step() {
    let id: CompressorKind = Identity.into();
    let bern: CompressorKind = BernoulliSparsifier::new(0.4).unwrap().into();
    let poly = Schedule::polynomial(0.5).unwrap();
    // State-independent: the additive step is the general one when b is constant (with a
    // time-dependent schedule it takes b(t + h/2) for ¼(2b(t) + 2b(t+h)), equal to O(h²) only).
    check(
        "dsgd",
        Dsgd::new(agents(4, None, id)).unwrap(),
        Schedule::constant(),
        true,
    );
    check(
        "dcsgd bernoulli",
        Dcsgd::new(agents(4, None, bern)).unwrap(),
        poly,
        false,
    );
    check(
        "dsignsgd gaussian",
        DsignSgd::new(agents(4, None, id)).unwrap(),
        poly,
        false,
    );
    check(
        "dsignsgd student 2.5",
        DsignSgd::new(agents(4, Some(2.5), id)).unwrap(),
        Schedule::constant(),
        false,
    );
}
