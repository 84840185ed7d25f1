//! A minimal complex `f64` for numeric evaluation (principal branches throughout).

use std::f64::consts::PI;

/// `re + im·i`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct C64 {
    /// Real part.
    pub re: f64,
    /// Imaginary part.
    pub im: f64,
}

impl C64 {
    /// The imaginary unit.
    pub const I: C64 = C64 { re: 0.0, im: 1.0 };

    /// A real number.
    pub fn real(re: f64) -> C64 {
        C64 { re, im: 0.0 }
    }

    /// Whether both parts are finite.
    pub fn is_finite(self) -> bool {
        self.re.is_finite() && self.im.is_finite()
    }

    /// `|z|`.
    pub fn abs(self) -> f64 {
        self.re.hypot(self.im)
    }

    /// `z + w`.
    pub fn add(self, w: C64) -> C64 {
        C64 {
            re: self.re + w.re,
            im: self.im + w.im,
        }
    }

    /// `z - w`.
    pub fn sub(self, w: C64) -> C64 {
        C64 {
            re: self.re - w.re,
            im: self.im - w.im,
        }
    }

    /// `-z`.
    pub fn neg(self) -> C64 {
        C64 {
            re: -self.re,
            im: -self.im,
        }
    }

    /// `z · w`.
    pub fn mul(self, w: C64) -> C64 {
        C64 {
            re: self.re * w.re - self.im * w.im,
            im: self.re * w.im + self.im * w.re,
        }
    }

    /// `z / w` (non-finite when `w = 0`).
    pub fn div(self, w: C64) -> C64 {
        let d = w.re * w.re + w.im * w.im;
        C64 {
            re: (self.re * w.re + self.im * w.im) / d,
            im: (self.im * w.re - self.re * w.im) / d,
        }
    }

    /// `e^z`.
    pub fn exp(self) -> C64 {
        let m = self.re.exp();
        C64 {
            re: m * self.im.cos(),
            im: m * self.im.sin(),
        }
    }

    /// Principal `ln z`.
    pub fn ln(self) -> C64 {
        C64 {
            re: self.abs().ln(),
            im: self.im.atan2(self.re),
        }
    }

    /// Principal `√z`; real and non-negative for real `z >= 0`.
    pub fn sqrt(self) -> C64 {
        if self.im == 0.0 {
            return if self.re >= 0.0 {
                C64::real(self.re.sqrt())
            } else {
                C64 {
                    re: 0.0,
                    im: (-self.re).sqrt(),
                }
            };
        }
        let r = self.abs();
        let re = ((r + self.re) / 2.0).sqrt();
        let im = ((r - self.re) / 2.0).sqrt().copysign(self.im);
        C64 { re, im }
    }

    /// `z^w`: exact repeated multiplication for small integer `w`, real powers of positive reals,
    /// real odd roots of negative reals (`(-8)^(1/3) = -2`), else `exp(w · ln z)`.
    pub fn pow(self, w: C64) -> C64 {
        if w.im == 0.0 && w.re.fract() == 0.0 && w.re.abs() <= 64.0 {
            let mut acc = C64::real(1.0);
            for _ in 0..(w.re.abs() as u32) {
                acc = acc.mul(self);
            }
            return if w.re < 0.0 {
                C64::real(1.0).div(acc)
            } else {
                acc
            };
        }
        if self.im == 0.0 && w.im == 0.0 {
            if self.re > 0.0 {
                return C64::real(self.re.powf(w.re));
            }
            if self.re < 0.0 {
                // 1/k for odd k: the real root, as a mathematician reads ∛(−8).
                let k = 1.0 / w.re;
                if (k - k.round()).abs() < 1e-12 && (k.round() as i64) % 2 != 0 {
                    return C64::real(-(-self.re).powf(w.re));
                }
            }
        }
        if self.re == 0.0 && self.im == 0.0 {
            return if w.re > 0.0 {
                C64::real(0.0)
            } else {
                C64::real(f64::NAN)
            };
        }
        w.mul(self.ln()).exp()
    }

    /// `sin z`.
    pub fn sin(self) -> C64 {
        C64 {
            re: self.re.sin() * self.im.cosh(),
            im: self.re.cos() * self.im.sinh(),
        }
    }

    /// `cos z`.
    pub fn cos(self) -> C64 {
        C64 {
            re: self.re.cos() * self.im.cosh(),
            im: -self.re.sin() * self.im.sinh(),
        }
    }

    /// `arcsin z = -i · ln(iz + √(1 − z²))`.
    pub fn asin(self) -> C64 {
        if self.im == 0.0 && self.re.abs() <= 1.0 {
            return C64::real(self.re.asin());
        }
        let one = C64::real(1.0);
        let inner = C64::I.mul(self).add(one.sub(self.mul(self)).sqrt());
        C64::I.neg().mul(inner.ln())
    }

    /// `arccos z = π/2 − arcsin z`.
    pub fn acos(self) -> C64 {
        C64::real(PI / 2.0).sub(self.asin())
    }

    /// `arctan z = (i/2) · ln((i + z)/(i − z))`.
    pub fn atan(self) -> C64 {
        if self.im == 0.0 {
            return C64::real(self.re.atan());
        }
        let half_i = C64 { re: 0.0, im: 0.5 };
        half_i.mul(C64::I.add(self).div(C64::I.sub(self)).ln())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: C64, b: C64) -> bool {
        a.sub(b).abs() < 1e-12
    }

    #[test]
    fn principal_branches() {
        assert!(close(C64::real(-4.0).sqrt(), C64 { re: 0.0, im: 2.0 }));
        assert!(close(
            C64::real(-8.0).pow(C64::real(1.0 / 3.0)),
            C64::real(-2.0)
        ));
        assert!(close(C64::real(2.0).pow(C64::real(-2.0)), C64::real(0.25)));
        // e^{iπ} = −1
        assert!(close(C64 { re: 0.0, im: PI }.exp(), C64::real(-1.0)));
        assert!(close(C64::real(0.5).asin().sin(), C64::real(0.5)));
        assert!(close(
            C64 { re: 0.3, im: 0.2 }.atan(),
            C64 { re: 0.3, im: 0.2 }.atan()
        ));
    }
}
