//! Real data sets, compiled into the binary by `linfa-datasets` (gzipped CSV inside the crate:
//! nothing is downloaded at run time), split into a training and a test part and standardized.
//!
//! Recipe of [`Split::new`] (everything from `seed`, so the same seed gives the same bits):
//! 1. a uniformly random permutation of the rows from `sde_core::derive_stream(seed, 1)`
//!    (Fisher–Yates); the first `n_test = round(test_fraction · n)` rows of it are the test set,
//!    the rest, in permuted order, the training set;
//! 2. every feature is centred and scaled by the **training** mean and standard deviation
//!    (population form, `1/n_train`; a constant feature is only centred), the same affine map is
//!    applied to the test rows (so no test statistic leaks into training);
//! 3. regression targets are standardized the same way (training mean and deviation), class
//!    labels are kept as indices `0..k`.

use crate::error::ModelError;
use rand::RngExt;

/// The data sets this crate ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatasetName {
    /// Fisher's iris: 150 rows, 4 features, 3 classes.
    Iris,
    /// Red wine quality (UCI): 1599 rows, 11 features, quality score `3..=8` as a regression target.
    WineQuality,
    /// Diabetes progression (Efron et al. 2004): 10 features, a regression target; 441 rows as
    /// `linfa-datasets` ships it (its CSV loader takes the first of the 442 rows for a header).
    Diabetes,
}

impl DatasetName {
    pub const ALL: [DatasetName; 3] = [
        DatasetName::Iris,
        DatasetName::WineQuality,
        DatasetName::Diabetes,
    ];

    /// The configuration name (`loss.dataset`).
    pub fn name(&self) -> &'static str {
        match self {
            DatasetName::Iris => "iris",
            DatasetName::WineQuality => "wine_quality",
            DatasetName::Diabetes => "diabetes",
        }
    }

    /// Parses `loss.dataset`; an unknown name is an error that lists the known ones.
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        DatasetName::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = DatasetName::ALL.iter().map(|d| d.name()).collect();
                ModelError::invalid(
                    "loss.dataset",
                    s,
                    format!("unknown data set; known: {}", known.join(", ")),
                )
            })
    }

    /// Loads the full, raw (unstandardized) data set.
    pub fn load(&self) -> Dataset {
        match self {
            DatasetName::Iris => {
                let ds = linfa_datasets::iris();
                let labels: Vec<usize> = ds.targets.iter().copied().collect();
                let (n, p) = ds.records.dim();
                let features = ds.records.iter().copied().collect();
                Dataset::raw(n, p, features, Targets::Classes { labels, k: 3 })
            }
            DatasetName::WineQuality => {
                let ds = linfa_datasets::winequality();
                let values = ds.targets.iter().map(|&q| q as f64).collect();
                let (n, p) = ds.records.dim();
                let features = ds.records.iter().copied().collect();
                Dataset::raw(n, p, features, Targets::Values(values))
            }
            DatasetName::Diabetes => {
                let ds = linfa_datasets::diabetes();
                let values = ds.targets.iter().copied().collect();
                let (n, p) = ds.records.dim();
                let features = ds.records.iter().copied().collect();
                Dataset::raw(n, p, features, Targets::Values(values))
            }
        }
    }
}

/// What is predicted.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// Class indices in `0..k`.
    Classes { labels: Vec<usize>, k: usize },
    /// One real value per row.
    Values(Vec<f64>),
}

impl Targets {
    fn len(&self) -> usize {
        match self {
            Targets::Classes { labels, .. } => labels.len(),
            Targets::Values(v) => v.len(),
        }
    }

    fn select(&self, rows: &[usize]) -> Targets {
        match self {
            Targets::Classes { labels, k } => Targets::Classes {
                labels: rows.iter().map(|&i| labels[i]).collect(),
                k: *k,
            },
            Targets::Values(v) => Targets::Values(rows.iter().map(|&i| v[i]).collect()),
        }
    }

    /// Number of classes, `None` for regression.
    pub fn classes(&self) -> Option<usize> {
        match self {
            Targets::Classes { k, .. } => Some(*k),
            Targets::Values(_) => None,
        }
    }

    /// Target of row `i` as a number: the class index, or the value.
    pub fn as_f64(&self, i: usize) -> f64 {
        match self {
            Targets::Classes { labels, .. } => labels[i] as f64,
            Targets::Values(v) => v[i],
        }
    }
}

/// Rows of features (row-major `n × p`) and their targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    n: usize,
    p: usize,
    features: Vec<f64>,
    targets: Targets,
}

impl Dataset {
    /// The shipped data, trusted (its shapes are fixed by the crate).
    fn raw(n: usize, p: usize, features: Vec<f64>, targets: Targets) -> Dataset {
        Dataset {
            n,
            p,
            features,
            targets,
        }
    }

    /// From row-major features and targets. Validates sizes, finiteness and labels `< k`.
    pub fn new(
        n: usize,
        p: usize,
        features: Vec<f64>,
        targets: Targets,
    ) -> Result<Self, ModelError> {
        if n == 0 || p == 0 {
            return Err(ModelError::invalid(
                "dataset",
                format!("{n}×{p}"),
                "needs at least one row and one feature",
            ));
        }
        crate::error::require_len("features", n * p, features.len())?;
        crate::error::require_len("targets", n, targets.len())?;
        crate::error::require_each("features", &features, crate::error::require_finite)?;
        match &targets {
            Targets::Classes { labels, k } => {
                if let Some(bad) = labels.iter().find(|&&l| l >= *k) {
                    return Err(ModelError::invalid(
                        "targets",
                        bad,
                        format!("class label must be < k = {k}"),
                    ));
                }
            }
            Targets::Values(v) => {
                crate::error::require_each("targets", v, crate::error::require_finite)?
            }
        }
        Ok(Dataset {
            n,
            p,
            features,
            targets,
        })
    }

    /// Rows `n`.
    pub fn rows(&self) -> usize {
        self.n
    }
    /// Features `p`.
    pub fn features(&self) -> usize {
        self.p
    }
    /// Row-major `n × p` features.
    pub fn feature_matrix(&self) -> &[f64] {
        &self.features
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.features[i * self.p..(i + 1) * self.p]
    }
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    fn select(&self, rows: &[usize]) -> Dataset {
        let mut features = Vec::with_capacity(rows.len() * self.p);
        for &i in rows {
            features.extend_from_slice(self.row(i));
        }
        Dataset {
            n: rows.len(),
            p: self.p,
            features,
            targets: self.targets.select(rows),
        }
    }

    /// Per-feature mean and population standard deviation.
    pub fn feature_moments(&self) -> (Vec<f64>, Vec<f64>) {
        let n = self.n as f64;
        let mut mean = vec![0.0; self.p];
        for row in self.features.chunks_exact(self.p) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v / n;
            }
        }
        let mut var = vec![0.0; self.p];
        for row in self.features.chunks_exact(self.p) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m) / n;
            }
        }
        (mean, var.into_iter().map(f64::sqrt).collect())
    }

    fn standardize_with(&mut self, mean: &[f64], sd: &[f64]) {
        for row in self.features.chunks_exact_mut(self.p) {
            for ((v, m), s) in row.iter_mut().zip(mean).zip(sd) {
                *v -= m;
                // A constant feature (sd 0) is only centred.
                if *s > 0.0 {
                    *v /= s;
                }
            }
        }
    }
}

/// A training and a test set (see the module documentation for the recipe).
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub name: DatasetName,
    pub train: Dataset,
    pub test: Dataset,
    /// Training target mean and deviation removed from regression targets (`(0, 1)` for classes).
    pub target_shift: (f64, f64),
}

impl Split {
    /// Splits `data` with `test_fraction ∈ [0, 1)` of the rows held out (rounded; at least one
    /// training row) and standardizes it, all from `seed`.
    pub fn new(
        name: DatasetName,
        data: Dataset,
        test_fraction: f64,
        seed: u64,
    ) -> Result<Self, ModelError> {
        if !(0.0..1.0).contains(&test_fraction) {
            return Err(ModelError::invalid(
                "loss.test_fraction",
                test_fraction,
                "must be in [0, 1)",
            ));
        }
        let n = data.rows();
        let n_test = ((test_fraction * n as f64).round() as usize).min(n - 1);
        let mut perm: Vec<usize> = (0..n).collect();
        let mut rng = sde_core::derive_stream(seed, 1);
        for i in (1..n).rev() {
            let j = rng.random_range(0..=i);
            perm.swap(i, j);
        }
        let mut test = data.select(&perm[..n_test]);
        let mut train = data.select(&perm[n_test..]);
        let (mean, sd) = train.feature_moments();
        train.standardize_with(&mean, &sd);
        test.standardize_with(&mean, &sd);
        let mut target_shift = (0.0, 1.0);
        if let Targets::Values(v) = &train.targets {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let s = (v.iter().map(|y| (y - m) * (y - m)).sum::<f64>() / v.len() as f64).sqrt();
            let s = if s > 0.0 { s } else { 1.0 };
            target_shift = (m, s);
            for set in [&mut train, &mut test] {
                if let Targets::Values(v) = &mut set.targets {
                    v.iter_mut().for_each(|y| *y = (*y - m) / s);
                }
            }
        }
        Ok(Split {
            name,
            train,
            test,
            target_shift,
        })
    }

    /// Loads `name` and splits it.
    pub fn load(name: DatasetName, test_fraction: f64, seed: u64) -> Result<Self, ModelError> {
        Split::new(name, name.load(), test_fraction, seed)
    }
}
