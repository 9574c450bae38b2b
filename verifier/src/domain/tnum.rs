//! Tristate numbers: each bit known 0, known 1, or unknown (`mask` bit set). The kernel's
//! `struct tnum` and its operations, which every scalar register carries as `var_off`.

use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[allow(clippy::should_implement_trait)] // the kernel's names: tnum_add, tnum_sub, ...
pub struct Tnum {
    pub value: u64,
    pub mask: u64,
}

#[allow(clippy::should_implement_trait)] // the kernel's names: tnum_add, tnum_sub, ...
impl Tnum {
    pub const UNKNOWN: Tnum = Tnum {
        value: 0,
        mask: u64::MAX,
    };

    pub const fn konst(value: u64) -> Tnum {
        Tnum { value, mask: 0 }
    }

    fn new(value: u64, mask: u64) -> Tnum {
        Tnum { value, mask }
    }

    /// The smallest tnum holding every value of `[min, max]`.
    pub fn range(min: u64, max: u64) -> Tnum {
        let chi = min ^ max;
        let bits = 64 - chi.leading_zeros();
        if bits > 63 {
            return Tnum::UNKNOWN;
        }
        let delta = (1u64 << bits) - 1;
        Tnum::new(min & !delta, delta)
    }

    pub fn is_const(self) -> bool {
        self.mask == 0
    }

    pub fn is_unknown(self) -> bool {
        self.mask == u64::MAX
    }

    pub fn add(self, b: Tnum) -> Tnum {
        let sm = self.mask.wrapping_add(b.mask);
        let sv = self.value.wrapping_add(b.value);
        let sigma = sm.wrapping_add(sv);
        let chi = sigma ^ sv;
        let mu = chi | self.mask | b.mask;
        Tnum::new(sv & !mu, mu)
    }

    pub fn sub(self, b: Tnum) -> Tnum {
        let dv = self.value.wrapping_sub(b.value);
        let alpha = dv.wrapping_add(self.mask);
        let beta = dv.wrapping_sub(b.mask);
        let chi = alpha ^ beta;
        let mu = chi | self.mask | b.mask;
        Tnum::new(dv & !mu, mu)
    }

    pub fn neg(self) -> Tnum {
        Tnum::konst(0).sub(self)
    }

    pub fn and(self, b: Tnum) -> Tnum {
        let alpha = self.value | self.mask;
        let beta = b.value | b.mask;
        let v = self.value & b.value;
        Tnum::new(v, alpha & beta & !v)
    }

    pub fn or(self, b: Tnum) -> Tnum {
        let v = self.value | b.value;
        let mu = self.mask | b.mask;
        Tnum::new(v, mu & !v)
    }

    pub fn xor(self, b: Tnum) -> Tnum {
        let v = self.value ^ b.value;
        let mu = self.mask | b.mask;
        Tnum::new(v & !mu, mu)
    }

    pub fn mul(self, b: Tnum) -> Tnum {
        let acc_v = self.value.wrapping_mul(b.value);
        let mut acc_m = Tnum::konst(0);
        let (mut a, mut b) = (self, b);
        while a.value != 0 || a.mask != 0 {
            if a.value & 1 != 0 {
                acc_m = acc_m.add(Tnum::new(0, b.mask));
            } else if a.mask & 1 != 0 {
                acc_m = acc_m.add(Tnum::new(0, b.value | b.mask));
            }
            a = a.rshift(1);
            b = b.lshift(1);
        }
        Tnum::konst(acc_v).add(acc_m)
    }

    pub fn lshift(self, s: u32) -> Tnum {
        Tnum::new(self.value.wrapping_shl(s), self.mask.wrapping_shl(s))
    }

    pub fn rshift(self, s: u32) -> Tnum {
        Tnum::new(self.value.wrapping_shr(s), self.mask.wrapping_shr(s))
    }

    /// Arithmetic shift right of a 32- or 64-bit value.
    pub fn arshift(self, s: u32, bits: u32) -> Tnum {
        if bits == 32 {
            Tnum::new(
                ((self.value as i32) >> s) as u32 as u64,
                ((self.mask as i32) >> s) as u32 as u64,
            )
        } else {
            Tnum::new(
                ((self.value as i64) >> s) as u64,
                ((self.mask as i64) >> s) as u64,
            )
        }
    }

    pub fn intersect(self, b: Tnum) -> Tnum {
        let v = self.value | b.value;
        let mu = self.mask & b.mask;
        Tnum::new(v & !mu, mu)
    }

    /// The low `size` bytes.
    pub fn cast(self, size: u32) -> Tnum {
        if size >= 8 {
            return self;
        }
        let m = (1u64 << (size * 8)) - 1;
        Tnum::new(self.value & m, self.mask & m)
    }

    pub fn subreg(self) -> Tnum {
        self.cast(4)
    }

    pub fn clear_subreg(self) -> Tnum {
        self.rshift(32).lshift(32)
    }

    pub fn with_subreg(self, sub: Tnum) -> Tnum {
        self.clear_subreg().or(sub.subreg())
    }

    /// Whether every value of `b` is a value of `self`.
    pub fn contains(self, b: Tnum) -> bool {
        if b.mask & !self.mask != 0 {
            return false;
        }
        self.value == b.value & !self.mask
    }

    /// Whether every value is a multiple of `size` (a power of two).
    pub fn is_aligned(self, size: u64) -> bool {
        size == 0 || (self.value | self.mask) & (size - 1) == 0
    }
}

impl fmt::Display for Tnum {
    /// The kernel's `tnum_strn`: `(0x0; 0xff)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:#x}; {:#x})", self.value, self.mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_arithmetic() {
        assert_eq!(Tnum::range(0, 255), Tnum::new(0, 0xff));
        assert_eq!(Tnum::range(4, 7), Tnum::new(4, 3));
        assert!(Tnum::range(0, u64::MAX).is_unknown());
        let a = Tnum::range(0, 15);
        assert_eq!(a.add(Tnum::konst(16)), Tnum::new(16, 15));
        assert_eq!(a.and(Tnum::konst(3)), Tnum::new(0, 3));
        assert_eq!(Tnum::konst(6).mul(Tnum::konst(7)), Tnum::konst(42));
        assert!(a.contains(Tnum::konst(9)));
        assert!(!Tnum::konst(9).contains(a));
        assert_eq!(Tnum::konst(0x1_0000_0005).subreg(), Tnum::konst(5));
        assert_eq!(
            Tnum::konst((-8i64) as u64).arshift(1, 64),
            Tnum::konst((-4i64) as u64)
        );
        assert_eq!(Tnum::new(0, 0xff).to_string(), "(0x0; 0xff)");
    }
}
