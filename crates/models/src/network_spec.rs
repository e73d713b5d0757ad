//! The `loss.kind = "logistic"` and `"mlp"` kinds (registry lines in `loss.rs`): their specs and
//! the two loss types, thin shared handles on one [`Mlp`] (an `Arc`, so the minibatch method of
//! [`crate::minibatch`] can hold the same network as the optimizer's loss).

use crate::data::DatasetName;
use crate::error::ModelError;
use crate::kind::{KeyDoc, KindSpec};
use crate::loss::{Loss, Smoothness};
use crate::mlp::{Activation, Mlp, MlpSpec, Objective};
use std::sync::Arc;

macro_rules! network_loss {
    ($(#[$m:meta])* $T:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $T(pub Arc<Mlp>);

        impl $T {
            /// The shared network (for [`crate::minibatch::Minibatch`]).
            pub fn network(&self) -> Arc<Mlp> {
                self.0.clone()
            }
        }

        impl Loss for $T {
            fn dim(&self) -> usize {
                self.0.dim()
            }
            fn value(&self, x: &[f64]) -> f64 {
                self.0.value(x)
            }
            fn gradient(&self, x: &[f64], g: &mut [f64]) {
                self.0.gradient(x, g)
            }
            fn hessian_vec(&self, x: &[f64], v: &[f64], out: &mut [f64]) {
                self.0.hessian_vec(x, v, out)
            }
            fn smoothness(&self) -> Smoothness {
                self.0.smoothness()
            }
            fn minimum(&self) -> Option<f64> {
                self.0.minimum()
            }
            fn name(&self) -> &'static str {
                self.0.name()
            }
            fn test_loss(&self, x: &[f64]) -> Option<f64> {
                Loss::test_loss(&*self.0, x)
            }
            fn test_accuracy(&self, x: &[f64]) -> Option<f64> {
                Loss::test_accuracy(&*self.0, x)
            }
        }
    };
}

network_loss!(
    /// `loss.kind = "logistic"`.
    LogisticLoss
);
network_loss!(
    /// `loss.kind = "mlp"`.
    NetworkLoss
);

fn default_test_fraction() -> f64 {
    0.2
}
fn default_activation() -> String {
    "tanh".into()
}

/// `MlpSpec`'s errors name `loss.<key>`; the config layer prefixes the section itself.
fn unprefixed(e: ModelError) -> ModelError {
    match e {
        ModelError::InvalidParameter {
            name,
            value,
            reason,
        } => ModelError::InvalidParameter {
            name: name.strip_prefix("loss.").unwrap_or(&name).to_string(),
            value,
            reason,
        },
        other => other,
    }
}

/// The parameter count must match `x0` when one is given (`d > 0`).
fn check_dim(net: &Mlp, d: usize) -> Result<(), ModelError> {
    if d != 0 && d != net.dim() {
        return Err(ModelError::invalid(
            "x0",
            format!("a list of length {d}"),
            format!(
                "the network {:?} has {} parameters (leave x0 out to initialise from seed)",
                net.sizes(),
                net.dim()
            ),
        ));
    }
    Ok(())
}

const COMMON_KEYS: [KeyDoc; 5] = [
    KeyDoc {
        key: "dataset",
        doc: "\"iris\" | \"wine_quality\" | \"diabetes\", required: shipped data set",
    },
    KeyDoc {
        key: "objective",
        doc: "\"cross_entropy\" | \"squared\", default cross_entropy for classes, squared for regression",
    },
    KeyDoc {
        key: "l2",
        doc: "number >= 0, default 0: (l2/2)|theta|^2 added to the mean loss",
    },
    KeyDoc {
        key: "test_fraction",
        doc: "number in [0, 1), default 0.2: held-out rows",
    },
    KeyDoc {
        key: "seed",
        doc: "integer >= 0, default 0: split permutation and initialisation",
    },
];

fn build_net(spec: MlpSpec, d: usize) -> Result<Arc<Mlp>, ModelError> {
    let net = Mlp::new(spec).map_err(unprefixed)?;
    check_dim(&net, d)?;
    Ok(Arc::new(net))
}

fn objective(o: &Option<String>) -> Result<Option<Objective>, ModelError> {
    o.as_deref()
        .map(Objective::parse)
        .transpose()
        .map_err(unprefixed)
}

/// A data-set loss's spec and its [`KindSpec`] impl (in the form of [`crate::kind_spec!`]):
/// `dataset`, the kind's own keys, then the keys every data-set loss shares (`objective`, `l2`,
/// `test_fraction`, `seed`), documented in that order; `network` turns the shared keys into the
/// [`MlpSpec`] of the kind's architecture.
macro_rules! dataset_loss_spec {
    (
        $(#[$m:meta])*
        $Name:ident: KindSpec<Output = $Out:ty> {
            $( $(#[$fa:meta])* $f:ident : $t:ty => $doc:expr ),* $(,)?
        }
        summary $summary:expr;
        build($s:ident, $c:pat) $body:block
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $Name {
            pub dataset: String,
            $( $(#[$fa])* pub $f: $t, )*
            #[serde(default)]
            pub objective: Option<String>,
            #[serde(default)]
            pub l2: f64,
            #[serde(default = "default_test_fraction")]
            pub test_fraction: f64,
            #[serde(default)]
            pub seed: u64,
        }

        impl $Name {
            /// The network: the data set, then `activation()`, then the objective are checked,
            /// in that order.
            fn network(
                &self,
                hidden: Vec<usize>,
                activation: impl FnOnce() -> Result<Activation, ModelError>,
            ) -> Result<MlpSpec, ModelError> {
                Ok(MlpSpec {
                    dataset: DatasetName::parse(&self.dataset).map_err(unprefixed)?,
                    hidden,
                    activation: activation()?,
                    objective: objective(&self.objective)?,
                    l2: self.l2,
                    test_fraction: self.test_fraction,
                    seed: self.seed,
                })
            }
        }

        impl KindSpec for $Name {
            type Output = $Out;
            type Context = usize;
            const SUMMARY: &'static str = $summary;
            const KEYS: &'static [KeyDoc] = &[
                COMMON_KEYS[0],
                $( KeyDoc { key: stringify!($f), doc: $doc }, )*
                COMMON_KEYS[1],
                COMMON_KEYS[2],
                COMMON_KEYS[3],
                COMMON_KEYS[4],
            ];
            fn build(&$s, $c: &usize) -> Result<$Out, ModelError> $body
        }
    };
}

dataset_loss_spec! {
    /// `kind = "logistic"`: multinomial logistic regression.
    LogisticSpec: KindSpec<Output = LogisticLoss> {}
    summary "dataset, l2, test_fraction, seed: softmax regression on a shipped data set (x0 optional)";
    build(self, d) {
        let spec = self.network(Vec::new(), || Ok(Activation::Tanh))?;
        Ok(LogisticLoss(build_net(spec, *d)?))
    }
}

dataset_loss_spec! {
    /// `kind = "mlp"`: a multilayer perceptron.
    MlpLossSpec: KindSpec<Output = NetworkLoss> {
        hidden: Vec<usize> => "list of 1-2 positive integers, required: hidden-layer widths",
        #[serde(default = "default_activation")]
        activation: String => "\"tanh\" | \"softplus\", default tanh",
    }
    summary "dataset, hidden, activation, l2, test_fraction, seed: MLP on a shipped data set (x0 optional)";
    build(self, d) {
        if self.hidden.is_empty() {
            return Err(ModelError::invalid(
                "hidden",
                "[]",
                "an MLP needs one or two hidden layers (no hidden layer: kind = \"logistic\")",
            ));
        }
        let spec = self.network(self.hidden.clone(), || {
            Activation::parse(&self.activation).map_err(unprefixed)
        })?;
        Ok(NetworkLoss(build_net(spec, *d)?))
    }
}
