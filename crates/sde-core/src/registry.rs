//! The one macro behind the run-time choices of a family ([`crate::SchemeKind`],
//! [`crate::IncrementKind`]): each family keeps one list of its members, and this writes the
//! rest from it.

/// Writes the enum `$kind` from a family's one list: its variants (serialized by their config
/// names), `ALL`, `name`, and `visit`, which calls the family's visitor with the concrete value,
/// so the code behind it stays monomorphic.
macro_rules! kind_registry {
    (
        $(#[$kind_doc:meta])* $kind:ident visited by $visitor:path {
            $($(#[$doc:meta])* $variant:ident = $name:literal => $make:expr;)+
        }
    ) => {
        $(#[$kind_doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum $kind {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)+
        }

        impl $kind {
            pub const ALL: &'static [$kind] = &[$($kind::$variant,)+];

            /// The name used in configuration files and results (the serialized form).
            pub fn name(&self) -> &'static str {
                match self {
                    $($kind::$variant => $name,)+
                }
            }

            /// Calls `v.visit` with the concrete value (as configured by default).
            pub fn visit<V: $visitor>(self, v: V) -> V::Output {
                match self {
                    $($kind::$variant => v.visit($make),)+
                }
            }
        }
    };
}
