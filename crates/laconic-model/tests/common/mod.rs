//! Helpers shared by the f64 gradient checks (`moe_grad.rs`, `lora_grad.rs`): the flex device with f64
//! tensors, host copies and central differences.

use burn::backend::flex::FlexDevice;
use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::{FloatDType, IntDType};

/// Central-difference step: truncation error ~h² ≈ 1e-10, rounding ~1e-16/h ≈ 1e-11.
pub const STEP: f64 = 1e-5;

/// The flex device with f64 as its default float dtype (set once, before any tensor exists).
pub fn f64_device() -> FlexDevice {
    let device = Default::default();
    burn::tensor::set_default_dtypes::<Flex>(&device, FloatDType::F64, IntDType::I64)
        .expect("the first use of the device in this process");
    device
}

/// A tensor's values as f64.
pub fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().into_vec().unwrap()
}

/// `(L(θ + h·e_i) − L(θ − h·e_i)) / 2h` for every entry `i` of `base`, with `at` evaluating `L`.
pub fn central_differences(base: &[f64], mut at: impl FnMut(Vec<f64>) -> f64) -> Vec<f64> {
    (0..base.len())
        .map(|i| {
            let (mut plus, mut minus) = (base.to_vec(), base.to_vec());
            plus[i] += STEP;
            minus[i] -= STEP;
            (at(plus) - at(minus)) / (2.0 * STEP)
        })
        .collect()
}
