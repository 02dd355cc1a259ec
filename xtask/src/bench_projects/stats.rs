//! The arithmetic of the project benchmark: medians with p10/p90 of a case's samples and the ratio
//! of two medians, kept apart from the runs so that it is tested on its own.

/// Median, p10 and p90 of a set of samples (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub n: usize,
}

impl Spread {
    /// `None` for no samples. The median of an even count is the mean of the middle two; p10 and
    /// p90 are the nearest ranks (with few rounds, the lowest and the highest).
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        let at = |q: f64| sorted[((n - 1) as f64 * q).round() as usize];
        Some(Self {
            median,
            p10: at(0.1),
            p90: at(0.9),
            n,
        })
    }
}

/// `numerator / denominator` of two medians; `None` when either side has no sample or the
/// denominator is not positive.
pub fn ratio(numerator: Option<Spread>, denominator: Option<Spread>) -> Option<f64> {
    let (top, bottom) = (numerator?.median, denominator?.median);
    (bottom > 0.0).then(|| top / bottom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let odd = Spread::of(&[30.0, 10.0, 20.0]);
        assert_eq!(odd.map(|s| s.median), Some(20.0));
        let even = Spread::of(&[40.0, 10.0, 20.0, 30.0]);
        assert_eq!(even.map(|s| s.median), Some(25.0));
        assert_eq!(Spread::of(&[]), None);
    }

    #[test]
    fn p10_and_p90_are_the_ends_of_few_samples() {
        let spread = Spread::of(&[5.0, 1.0, 9.0]);
        assert_eq!(spread.map(|s| (s.p10, s.p90, s.n)), Some((1.0, 9.0, 3)));
        let many: Vec<f64> = (1..=11).map(f64::from).collect();
        assert_eq!(Spread::of(&many).map(|s| (s.p10, s.p90)), Some((2.0, 10.0)));
    }

    #[test]
    fn ratio_of_medians() {
        let sluice = Spread::of(&[105.0, 110.0, 100.0]);
        let hand = Spread::of(&[100.0, 90.0, 110.0]);
        assert_eq!(ratio(sluice, hand), Some(1.05));
        assert_eq!(ratio(sluice, None), None);
        assert_eq!(ratio(sluice, Spread::of(&[0.0])), None);
    }
}
