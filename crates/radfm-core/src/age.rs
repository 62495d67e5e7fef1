//! Age bands: one definition for the dataset card, the evaluation report's
//! subgroups and the HIPAA Safe Harbor cap (ages over 89 are one band, 90+).

/// A patient's age band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AgeBand {
    Under18,
    From18To39,
    From40To59,
    From60To79,
    From80To89,
    /// 90 and over: HIPAA Safe Harbor aggregates every age over 89.
    From90,
}

impl AgeBand {
    /// The name of the derived field: an evaluation subgroup (`--groups age_band`)
    /// and the dataset card's table.
    pub const FIELD: &'static str = "age_band";

    pub const ALL: [AgeBand; 6] = [
        AgeBand::Under18,
        AgeBand::From18To39,
        AgeBand::From40To59,
        AgeBand::From60To79,
        AgeBand::From80To89,
        AgeBand::From90,
    ];

    /// The band of an age in years, or None for a missing, negative or
    /// non-finite age.
    pub fn of(age_years: f64) -> Option<AgeBand> {
        if !age_years.is_finite() || age_years < 0.0 {
            return None;
        }
        Some(match age_years {
            a if a < 18.0 => AgeBand::Under18,
            a if a < 40.0 => AgeBand::From18To39,
            a if a < 60.0 => AgeBand::From40To59,
            a if a < 80.0 => AgeBand::From60To79,
            a if a < 90.0 => AgeBand::From80To89,
            _ => AgeBand::From90,
        })
    }

    /// The band's label ("40-59", "90+").
    pub const fn as_str(self) -> &'static str {
        match self {
            AgeBand::Under18 => "0-17",
            AgeBand::From18To39 => "18-39",
            AgeBand::From40To59 => "40-59",
            AgeBand::From60To79 => "60-79",
            AgeBand::From80To89 => "80-89",
            AgeBand::From90 => "90+",
        }
    }

    /// The label of `age`'s band, "unknown" when there is none.
    pub fn label(age_years: Option<f64>) -> &'static str {
        age_years
            .and_then(AgeBand::of)
            .map_or("unknown", AgeBand::as_str)
    }
}

text_form!(AgeBand);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_edges() {
        let table = [
            (0.0, "0-17"),
            (17.9, "0-17"),
            (18.0, "18-39"),
            (39.99, "18-39"),
            (40.0, "40-59"),
            (59.0, "40-59"),
            (60.0, "60-79"),
            (79.5, "60-79"),
            (80.0, "80-89"),
            (89.9, "80-89"),
            (90.0, "90+"),
            (104.0, "90+"),
        ];
        for (age, want) in table {
            assert_eq!(AgeBand::label(Some(age)), want, "{age}");
        }
        assert_eq!(AgeBand::label(None), "unknown");
        assert_eq!(AgeBand::label(Some(-1.0)), "unknown");
        assert_eq!(AgeBand::label(Some(f64::NAN)), "unknown");
    }
}
