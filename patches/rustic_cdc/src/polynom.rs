//! Polynomials over GF(2) packed in a `u64`: bit `i` is the coefficient of `x^i`.

/// A polynomial over GF(2).
pub trait Polynom {
    /// The degree; -1 for the zero polynomial.
    fn degree(&self) -> i32;

    /// The remainder of the division by `m` (which must not be zero).
    #[must_use]
    fn modulo(&self, m: &Self) -> Self;
}

/// A polynomial of degree at most 63.
pub type Polynom64 = u64;

impl Polynom for Polynom64 {
    #[allow(clippy::cast_possible_wrap)] // leading_zeros() ≤ 64
    fn degree(&self) -> i32 {
        63 - self.leading_zeros() as i32
    }

    fn modulo(&self, m: &Self) -> Self {
        assert!(*m != 0, "polynomial division by zero");
        let divisor_degree = m.degree();
        let mut rest = *self;
        loop {
            let degree = rest.degree();
            if degree < divisor_degree {
                return rest;
            }
            rest ^= m << (degree - divisor_degree);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degree_counts_from_zero_and_zero_has_none() {
        assert_eq!(0u64.degree(), -1);
        assert_eq!(1u64.degree(), 0);
        assert_eq!(0x80u64.degree(), 7);
        assert_eq!(u64::MAX.degree(), 63);
    }

    #[test]
    fn modulo_is_polynomial_division_not_integer_division() {
        // x^2+x+1 = (x+1)·x + 1
        assert_eq!(7u64.modulo(&3), 1);
        // x^4+x+1 mod x^3 = x+1
        assert_eq!(19u64.modulo(&8), 3);
        assert_eq!(16u64.modulo(&4), 0);
        assert_eq!(5u64.modulo(&7), 5u64 ^ 7);
    }
}
