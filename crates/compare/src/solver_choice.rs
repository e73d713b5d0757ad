//! Choosing a scheme and an increment source at run time while keeping the hot loop
//! monomorphic: a visitor receives the concrete types. The schemes and the increments come from
//! sde-core's registries ([`SchemeKind::visit`], [`IncrementKind::visit`]), so a new scheme or
//! increment source needs no line here.

use sde_core::{IncrementKind, IncrementVisitor, Increments, Scheme, SchemeKind, SchemeVisitor};

/// Code generic over the scheme and the increments, run by [`dispatch`].
pub trait SolverVisitor {
    type Output;
    fn visit<Sch: Scheme, I: Increments>(self, scheme: Sch, increments: I) -> Self::Output;
}

/// Calls `v.visit` with the concrete scheme and increment types named by the kinds.
pub fn dispatch<V: SolverVisitor>(
    scheme: SchemeKind,
    increments: IncrementKind,
    v: V,
) -> V::Output {
    struct WithIncrements<V> {
        increments: IncrementKind,
        v: V,
    }
    struct WithScheme<Sch, V> {
        scheme: Sch,
        v: V,
    }
    impl<V: SolverVisitor> SchemeVisitor for WithIncrements<V> {
        type Output = V::Output;
        fn visit<Sch: Scheme>(self, scheme: Sch) -> V::Output {
            self.increments.visit(WithScheme { scheme, v: self.v })
        }
    }
    impl<Sch: Scheme, V: SolverVisitor> IncrementVisitor for WithScheme<Sch, V> {
        type Output = V::Output;
        fn visit<I: Increments>(self, increments: I) -> V::Output {
            self.v.visit(self.scheme, increments)
        }
    }
    scheme.visit(WithIncrements { increments, v })
}
