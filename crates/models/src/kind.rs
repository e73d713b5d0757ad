//! One definition per kind: the registry pattern every family of kinds (losses, noises,
//! compressors, schedules, ...) follows. See `docs/ADDING_A_KIND.md`.
//!
//! A *kind* is one implementation (e.g. the rand-k compressor) together with its *spec*: a plain
//! struct holding the configuration keys of that kind, deserialized by serde
//! (`#[serde(deny_unknown_fields)]`), documented by [`KindSpec::SUMMARY`] and [`KindSpec::KEYS`],
//! and turned into the object by [`KindSpec::build`], which calls the validating constructor.
//! Both live in the kind's own file. A family's file then lists every kind once, in a
//! [`registry!`](crate::registry) (or [`spec_registry!`](crate::spec_registry)) invocation; that
//! one list generates
//!
//! - the runtime enum (`CompressorKind`, ...) with the family trait implemented by one `match`
//!   per method (static dispatch: the hot loops stay monomorphic and inlinable) and `From` for
//!   every kind's type;
//! - the spec enum (`CompressorSpec`, ...), internally tagged by `kind = "..."`, with
//!   `build`, `kind_name`, `KINDS` (the config names), `keys(kind)` (the serde field names,
//!   read off the serde definition by [`serde_fields`]) and `catalog()` (for `sdelab list` and
//!   the generated key tables).

use crate::error::ModelError;

/// One configuration key of a kind, for `sdelab list` and the generated key tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    /// The key (a serde field name of the spec).
    pub key: &'static str,
    /// Type, default and meaning, e.g. `number in (0, 1], required: keep probability`.
    pub doc: &'static str,
}

/// The spec of one kind: its configuration keys (the struct's fields) and how to build it.
pub trait KindSpec {
    /// What the spec builds (a kind's type; it converts into the family's runtime enum).
    type Output;
    /// What building needs besides the spec's own keys (e.g. the dimension `d`).
    type Context: ?Sized;
    /// One line for `sdelab list`: the formula and the key facts (`ω`, orders, ...).
    const SUMMARY: &'static str;
    /// Every key of the spec, in declaration order (a test checks them against the serde fields).
    const KEYS: &'static [KeyDoc];
    /// The object, through its validating constructor. Errors name the key (`ModelError`'s
    /// parameter name is the spec's field name, so a configuration layer can prefix the section).
    fn build(&self, ctx: &Self::Context) -> Result<Self::Output, ModelError>;
    /// Checks what [`KindSpec::build`] checks, without building (override where building is
    /// expensive, e.g. generated data).
    fn validate(&self, ctx: &Self::Context) -> Result<(), ModelError> {
        self.build(ctx).map(|_| ())
    }
    /// Writes the defaults that depend on the context (e.g. `d` ones) into the optional keys,
    /// so that a serialized configuration is complete.
    fn fill_defaults(&mut self, _ctx: &Self::Context) {}
}

/// Static description of one kind of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    /// The family, e.g. `compressor`.
    pub family: &'static str,
    /// The config name, e.g. `rand_k`.
    pub kind: &'static str,
    /// [`KindSpec::SUMMARY`].
    pub summary: &'static str,
    /// [`KindSpec::KEYS`].
    pub keys: &'static [KeyDoc],
    /// The serde field names (what a configuration accepts besides `kind`).
    pub fields: &'static [&'static str],
}

/// Every kind of every family this crate defines, family by family in configuration order.
pub fn all_kinds() -> Vec<KindInfo> {
    [
        crate::loss::LossSpec::catalog(),
        crate::noise::NoiseSpec::catalog(),
        crate::method::OptimizerSpec::catalog(),
        crate::compress::CompressorSpec::catalog(),
        crate::schedule::ScheduleSpec::catalog(),
    ]
    .concat()
}

/// The field names of the serde struct `T` (in declaration order), read off its `Deserialize`
/// implementation, so that a configuration layer can list the allowed keys ("did you mean")
/// without a second hand-written list.
pub fn serde_fields<'de, T: serde::Deserialize<'de>>() -> &'static [&'static str] {
    match T::deserialize(FieldCapture) {
        Err(CaptureError::Fields(f)) => f,
        _ => &[],
    }
}

/// A deserializer that only answers `deserialize_struct`, by failing with the field names.
struct FieldCapture;

#[derive(Debug)]
enum CaptureError {
    Fields(&'static [&'static str]),
    Other,
}

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field capture")
    }
}

impl std::error::Error for CaptureError {}

impl serde::de::Error for CaptureError {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        CaptureError::Other
    }
}

impl<'de> serde::Deserializer<'de> for FieldCapture {
    type Error = CaptureError;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(CaptureError::Other)
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        Err(CaptureError::Fields(fields))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// The spec enum of a family, from its list of kinds (see the module doc). Used by
/// [`registry!`](crate::registry); call it directly for a family whose runtime object is one
/// type (schedules):
///
/// ```ignore
/// crate::spec_registry! {
///     family "schedule", builds Schedule, context ScheduleContext;
///     /// `[schedule]` (every spec enum derives `Debug`, `Clone`, `PartialEq`, as the kinds'
///     /// specs do).
///     pub enum ScheduleSpec {
///         Constant = "constant" ConstantSpec,
///         Poly = "poly" PolySpec,
///     }
/// }
/// ```
#[macro_export]
macro_rules! spec_registry {
    (
        family $family:literal, builds $Out:ty, context $Ctx:ty;
        $(#[$attr:meta])*
        $vis:vis enum $Spec:ident {
            $( $(#[$vattr:meta])* $V:ident = $name:literal $S:ty ),* $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "kind")]
        $vis enum $Spec {
            $( $(#[$vattr])* #[serde(rename = $name)] $V($S), )*
        }

        impl $Spec {
            /// The config names of the kinds, in registry order.
            pub const KINDS: &'static [&'static str] = &[$($name),*];

            /// The config name of this kind.
            pub fn kind_name(&self) -> &'static str {
                match self {
                    $( $Spec::$V(_) => $name, )*
                }
            }

            /// Builds the object through the kind's validating constructor.
            pub fn build(&self, ctx: &$Ctx) -> Result<$Out, $crate::ModelError> {
                match self {
                    $( $Spec::$V(s) => $crate::kind::KindSpec::build(s, ctx).map(Into::into), )*
                }
            }

            /// Deserializes the keys of `kind` (everything but `kind` itself) from `d`. Unlike
            /// the tagged enum's `Deserialize`, which buffers the table first, this deserializes
            /// the kind's struct straight from `d`, so a path-tracking deserializer sees every
            /// key.
            pub fn deserialize_kind<'de, D: serde::Deserializer<'de>>(
                kind: &str,
                d: D,
            ) -> Result<Self, D::Error> {
                match kind {
                    $( $name => <$S as serde::Deserialize>::deserialize(d).map($Spec::$V), )*
                    _ => Err(<D::Error as serde::de::Error>::unknown_variant(kind, Self::KINDS)),
                }
            }

            /// Checks the spec without building it.
            pub fn validate(&self, ctx: &$Ctx) -> Result<(), $crate::ModelError> {
                match self {
                    $( $Spec::$V(s) => $crate::kind::KindSpec::validate(s, ctx), )*
                }
            }

            /// Fills in the defaults that depend on the context.
            pub fn fill_defaults(&mut self, ctx: &$Ctx) {
                match self {
                    $( $Spec::$V(s) => $crate::kind::KindSpec::fill_defaults(s, ctx), )*
                }
            }

            /// The keys (serde fields) of `kind`, besides `kind` itself; `None` for an unknown
            /// kind.
            pub fn keys(kind: &str) -> Option<&'static [&'static str]> {
                match kind {
                    $( $name => Some($crate::kind::serde_fields::<$S>()), )*
                    _ => None,
                }
            }

            /// Every kind of the family, with its summary and keys.
            pub fn catalog() -> Vec<$crate::kind::KindInfo> {
                vec![$(
                    $crate::kind::KindInfo {
                        family: $family,
                        kind: $name,
                        summary: <$S as $crate::kind::KindSpec>::SUMMARY,
                        keys: <$S as $crate::kind::KindSpec>::KEYS,
                        fields: $crate::kind::serde_fields::<$S>(),
                    },
                )*]
            }
        }
    };
}

/// The [`KindSpec::KEYS`] of a spec, one `key: "doc"` per line:
///
/// ```ignore
/// const KEYS: &'static [KeyDoc] = crate::keys! {
///     power: "number >= 0, required: decay exponent",
///     t0: "number > 0, required: the time scale in SDE time",
/// };
/// ```
#[macro_export]
macro_rules! keys {
    ($($key:ident : $doc:expr),* $(,)?) => {
        &[$($crate::kind::KeyDoc { key: stringify!($key), doc: $doc }),*]
    };
}

/// A kind's spec: the serde struct (`deny_unknown_fields`, plus `Debug`, `Clone`, `PartialEq`)
/// and its [`KindSpec`] impl, with [`KindSpec::KEYS`] written beside each field. The body of
/// `build` follows; further `KindSpec` items (`validate`, `fill_defaults`) may come after it.
///
/// ```ignore
/// crate::kind_spec! {
///     /// `kind = "poly_time"`.
///     #[derive(Copy)]
///     pub struct PolyTimeSpec: KindSpec<Output = Schedule, Context = Smoothness> {
///         /// Decay exponent.
///         pub power: f64 => "number >= 0, required: decay exponent",
///     }
///     summary "power >= 0: ...";
///     build(self, _) { Schedule::poly_time(self.power, 1.0) }
/// }
/// ```
#[macro_export]
macro_rules! kind_spec {
    (
        $(#[$attr:meta])*
        $vis:vis struct $Name:ident : KindSpec<Output = $Out:ty, Context = $Ctx:ty> {
            $( $(#[$fattr:meta])* $fvis:vis $f:ident : $ft:ty => $doc:expr ),* $(,)?
        }
        summary $summary:expr;
        build($s:ident, $c:pat) $body:block
        $($rest:tt)*
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        $vis struct $Name {
            $( $(#[$fattr])* $fvis $f: $ft, )*
        }

        impl $crate::kind::KindSpec for $Name {
            type Output = $Out;
            type Context = $Ctx;
            const SUMMARY: &'static str = $summary;
            const KEYS: &'static [$crate::kind::KeyDoc] = $crate::keys! { $($f: $doc),* };
            fn build(&$s, $c: &$Ctx) -> Result<$Out, $crate::ModelError> $body
            $($rest)*
        }
    };
}

/// A family of kinds with a runtime enum: the enum, its trait implementation (one `match` per
/// method), `From` for every kind's type, and the spec enum of [`spec_registry!`]. Each line
/// `Variant(Type) = "config_name" SpecType` registers one kind; `SpecType: KindSpec` with
/// `Output = Type`. The family's trait is declared in the registry, so its methods are listed
/// once, for the trait and for the dispatch:
///
/// ```ignore
/// crate::registry! {
///     family "compressor", context usize;
///     kinds {
///         Identity(Identity) = "identity" IdentitySpec,
///         RandK(RandK) = "rand_k" RandKSpec,
///     }
///     /// An unbiased compressor.
///     pub trait Compressor: Send + Sync {
///         /// The variance parameter.
///         fn omega(&self, d: usize) -> f64;
///     }
///     /// Any built-in compressor.
///     #[derive(Debug, Clone, Copy, PartialEq)]
///     pub enum CompressorKind;
///     /// `optimizer.compressor`.
///     pub enum CompressorSpec;
/// }
/// ```
///
/// A trait declared elsewhere is named with its list of methods (`pub enum Kind: Trait { fn
/// ...; }`), or with a macro that supplies the list (`pub enum Kind: Trait [list]`, for a trait
/// more than one enum implements: [`gradient_methods!`](crate::gradient_methods)).
#[macro_export]
macro_rules! registry {
    // `family ..., inherent;`: the enum also gets the listed methods as inherent ones, so
    // callers need not import the trait. Schedules use it: `Schedule` is named at every call
    // site of the models, and the trait would be one more import in each.
    // `kinds { ... } trait Trait { ... } enum Kind; enum Spec;`: the trait declared in the
    // registry, so its method list is written once, for the trait and for the enum's dispatch
    // (every method forwarded, `#[inline(always)]`: the match inlined into the generic callers costs
    // a compare and a direct call, where `#[inline]` left `LossKind`'s as a ~22-instruction
    // function of its own; one with a default body too, so a kind's own version is never skipped).
    (
        family $family:literal, context $Ctx:ty $(, $mode:ident)?;
        kinds $kinds:tt
        $(#[$tattr:meta])*
        $tvis:vis trait $Trait:ident $(: $bound:ident $(+ $bounds:ident)*)? { $($items:tt)* }
        $(#[$kattr:meta])*
        $kvis:vis enum $Kind:ident;
        $(#[$sattr:meta])*
        $svis:vis enum $Spec:ident;
    ) => {
        $(#[$tattr])*
        $tvis trait $Trait $(: $bound $(+ $bounds)*)? { $($items)* }
        $crate::registry!(@forward {
            family $family, context $Ctx $(, $mode)?;
            $(#[$kattr])*
            $kvis enum $Kind : $Trait
        } { $(#[$sattr])* $svis enum $Spec; kinds $kinds } [] $($items)*);
    };
    // Collects the dispatch list from the trait's items, one method at a time.
    (@forward $head:tt $tail:tt [$($list:tt)*]
        $(#[$mattr:meta])* fn $m:ident(&self $(, $a:ident : $t:ty)*) $(-> $r:ty)?;
        $($rest:tt)*) => {
        $crate::registry!(@forward $head $tail
            [$($list)* #[inline(always)] fn $m(&self $(, $a: $t)*) $(-> $r)?;] $($rest)*);
    };
    // A default body is dropped: the dispatch forwards the method like any other.
    (@forward $head:tt $tail:tt $list:tt
        $(#[$mattr:meta])* fn $m:ident(&self $(, $a:ident : $t:ty)*) $(-> $r:ty)? $body:block
        $($rest:tt)*) => {
        $crate::registry!(@forward $head $tail $list fn $m(&self $(, $a: $t)*) $(-> $r)?; $($rest)*);
    };
    (@forward { $($head:tt)* } { $($tail:tt)* } [$($list:tt)*]) => {
        $crate::registry! { $($head)* { $($list)* } $($tail)* }
    };
    (
        family $family:literal, context $Ctx:ty $(, $mode:ident)?;
        $(#[$kattr:meta])*
        $kvis:vis enum $Kind:ident : $Trait:ident $methods:tt
        $(#[$sattr:meta])*
        $svis:vis enum $Spec:ident;
        kinds $kinds:tt
    ) => {
        $crate::registry!(@enum [$(#[$kattr])* $kvis enum $Kind] $kinds);
        $crate::registry!(@spec [$family, $Kind, $Ctx, $(#[$sattr])* $svis enum $Spec] $kinds);
        $crate::registry!(@trait $Kind, $Trait, $kinds, $methods);
        $( $crate::registry!(@$mode $Kind, $Trait, $methods); )?
    };
    // `enum Kind: Trait [list]`: the method list is supplied by the macro `$crate::list!`, for
    // a trait more than one enum forwards (`GradientMethod`: see `gradient_methods!`), so the
    // list is written once. `list!(args)` must expand to `registry!(args { methods })`.
    (@trait $Kind:ident, $Trait:ident, $kinds:tt, [$list:ident]) => {
        $crate::$list!(@trait $Kind, $Trait, $kinds,);
    };
    (@inherent $Kind:ident, $Trait:ident, [$list:ident]) => {
        $crate::$list!(@inherent $Kind, $Trait,);
    };
    (@trait $Kind:ident, $Trait:ident, $kinds:tt,
        { $( $(#[$mattr:meta])* fn $m:ident(&self $(, $a:ident : $t:ty)*) $(-> $r:ty)?; )* }) => {
        impl $Trait for $Kind {
            $(
                $(#[$mattr])*
                fn $m(&self $(, $a: $t)*) $(-> $r)? {
                    $crate::registry!(@dispatch self, $m, ($($a),*), $kinds)
                }
            )*
        }
    };
    (@inherent $Kind:ident, $Trait:ident,
        { $( $(#[$mattr:meta])* fn $m:ident(&self $(, $a:ident : $t:ty)*) $(-> $r:ty)?; )* }) => {
        impl $Kind {
            $(
                $(#[$mattr])*
                #[doc = concat!("See [`", stringify!($Trait), "::", stringify!($m), "`].")]
                pub fn $m(&self $(, $a: $t)*) $(-> $r)? {
                    <Self as $Trait>::$m(self $(, $a)*)
                }
            )*
        }
    };
    (@enum [$(#[$kattr:meta])* $kvis:vis enum $Kind:ident]
        { $( $(#[$vattr:meta])* $V:ident($T:ty) = $name:literal $S:ty ),* $(,)? }) => {
        $(#[$kattr])*
        $kvis enum $Kind {
            $( #[doc = concat!("`kind = \"", $name, "\"`.")] $V($T), )*
        }
        $(
            impl From<$T> for $Kind {
                fn from(x: $T) -> Self {
                    $Kind::$V(x)
                }
            }
        )*
    };
    (@spec [$family:literal, $Kind:ident, $Ctx:ty, $(#[$sattr:meta])* $svis:vis enum $Spec:ident]
        { $( $(#[$vattr:meta])* $V:ident($T:ty) = $name:literal $S:ty ),* $(,)? }) => {
        $crate::spec_registry! {
            family $family, builds $Kind, context $Ctx;
            $(#[$sattr])*
            $svis enum $Spec {
                $( $(#[$vattr])* $V = $name $S ),*
            }
        }
    };
    (@dispatch $self:ident, $m:ident, $args:tt,
        { $( $(#[$vattr:meta])* $V:ident($T:ty) = $name:literal $S:ty ),* $(,)? }) => {
        match $self {
            $( Self::$V(x) => x.$m $args, )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Two {
        alpha: f64,
        #[serde(default)]
        beta: Vec<f64>,
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Empty {}

    #[test]
    fn every_kind_documents_exactly_its_keys() {
        let all = all_kinds();
        assert!(all.len() >= 19, "{} kinds", all.len());
        for k in &all {
            let documented: Vec<&str> = k.keys.iter().map(|d| d.key).collect();
            assert_eq!(documented, k.fields, "{} {}", k.family, k.kind);
            assert!(!k.summary.is_empty(), "{} {}", k.family, k.kind);
        }
        // Config names are unique within a family.
        for a in &all {
            let same = all
                .iter()
                .filter(|b| b.family == a.family && b.kind == a.kind)
                .count();
            assert_eq!(same, 1, "{} {}", a.family, a.kind);
        }
    }

    #[test]
    fn serde_fields_reads_the_declaration() {
        assert_eq!(serde_fields::<Two>(), &["alpha", "beta"]);
        assert!(serde_fields::<Empty>().is_empty());
        // Not a struct: no fields.
        assert!(serde_fields::<f64>().is_empty());
    }
}
