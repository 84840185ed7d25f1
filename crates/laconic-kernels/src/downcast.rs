//! Type-id helpers for code that is generic over a backend and takes a different route on one
//! backend: the flex kernels (is the float primitive a `FlexTensor`?) and laconic-model's fused
//! autodiff nodes (is `B` an `Autodiff<I, C>` for an inner backend compiled in?). The one set both use.

use std::any::{Any, TypeId};

/// Whether `A` and `B` are the same type.
pub fn same_type<A: 'static, B: 'static>() -> bool {
    TypeId::of::<A>() == TypeId::of::<B>()
}

/// `value` as type `U`, which must be its own type under another name (check with [`same_type`]).
///
/// # Panics
/// When `T` and `U` differ: a bug in the caller's check.
pub fn cast<T: 'static, U: 'static>(value: T) -> U {
    let boxed: Box<dyn Any> = Box::new(value);
    *boxed
        .downcast::<U>()
        .expect("cast between one type under two names (checked with same_type)")
}

/// `value` as a `&U`, which must be its own type under another name (check with [`same_type`]).
///
/// # Panics
/// When `T` and `U` differ: a bug in the caller's check.
pub fn cast_ref<T: 'static, U: 'static>(value: &T) -> &U {
    (value as &dyn Any)
        .downcast_ref::<U>()
        .expect("cast between one type under two names (checked with same_type)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_between_names_of_one_type() {
        type Alias = Vec<u8>;
        assert!(same_type::<Alias, Vec<u8>>());
        assert!(!same_type::<Vec<u8>, Vec<i8>>());
        let back: Vec<u8> = cast::<Alias, Vec<u8>>(vec![1, 2]);
        assert_eq!(back, [1, 2]);
        assert_eq!(cast_ref::<Alias, Vec<u8>>(&vec![3]), &[3]);
    }
}
