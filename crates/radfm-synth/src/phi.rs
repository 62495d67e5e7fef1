//! Invented identities: names, MRNs, accession numbers, addresses, phone
//! numbers and dates. Every string placed in a file is recorded, with where it
//! went, so that de-identification can be checked against the full list.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

const FAMILY: [&str; 40] = [
    "Abernathy",
    "Balasubramanian",
    "Castellanos",
    "Delacroix",
    "Eriksson",
    "Fairweather",
    "Gutierrez",
    "Halvorsen",
    "Ibarra",
    "Jablonski",
    "Kowalczyk",
    "Lindqvist",
    "Montgomery",
    "Nakagawa",
    "Okonkwo",
    "Pemberton",
    "Quintero",
    "Rasmussen",
    "Szymanski",
    "Thorngood",
    "Underhill",
    "Valdivia",
    "Whitcombe",
    "Xenakis",
    "Yamamoto",
    "Zabrowski",
    "Achterberg",
    "Bellweather",
    "Cavendish",
    "Drummond",
    "Esposito",
    "Featherstone",
    "Galloway",
    "Hargreaves",
    "Isherwood",
    "Jorgensen",
    "Kettleborough",
    "Llewellyn",
    "Marchetti",
    "Nightingale",
];
const GIVEN_F: [&str; 20] = [
    "Adelaide",
    "Beatrix",
    "Cordelia",
    "Delphine",
    "Eleanora",
    "Fenella",
    "Georgina",
    "Henrietta",
    "Imogen",
    "Jocasta",
    "Katarina",
    "Lavinia",
    "Marisol",
    "Ninette",
    "Ottilie",
    "Perpetua",
    "Rosalind",
    "Seraphina",
    "Theodora",
    "Wilhelmina",
];
const GIVEN_M: [&str; 20] = [
    "Alonso",
    "Bartholomew",
    "Casimir",
    "Desmond",
    "Evander",
    "Fitzgerald",
    "Gideon",
    "Horatio",
    "Ignatius",
    "Jasper",
    "Leopold",
    "Maximilian",
    "Norbert",
    "Octavius",
    "Percival",
    "Quentin",
    "Reginald",
    "Sebastian",
    "Thaddeus",
    "Ulysses",
];
const STREETS: [&str; 12] = [
    "Elm Street",
    "Birch Avenue",
    "Harbor Road",
    "Maple Lane",
    "Kingsway Drive",
    "Orchard Court",
    "Juniper Way",
    "Willow Place",
    "Chestnut Boulevard",
    "Foxglove Lane",
    "Heron Street",
    "Larkspur Drive",
];
const CITIES: [&str; 8] = [
    "Easton",
    "Westfield",
    "Norwood",
    "Southam",
    "Ashby",
    "Brampton",
    "Colbury",
    "Dunmore",
];

#[derive(Debug, Clone, serde::Serialize)]
pub struct Person {
    pub family: String,
    pub given: String,
}

impl Person {
    pub fn random(rng: &mut ChaCha8Rng, female: bool) -> Person {
        let given = if female {
            GIVEN_F[rng.gen_range(0..20)]
        } else {
            GIVEN_M[rng.gen_range(0..20)]
        };
        Person {
            family: FAMILY[rng.gen_range(0..FAMILY.len())].to_string(),
            given: given.to_string(),
        }
    }

    /// DICOM PN: FAMILY^GIVEN
    pub fn pn(&self) -> String {
        format!("{}^{}", self.family, self.given)
    }
}

/// One injected PHI string and where it went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhiRecord {
    pub value: String,
    /// e.g. "PatientName", "PatientAddress", "private (0009,1010)", "RequestAttributesSequence/RequestedProcedureID", "report", "pixels"
    pub location: String,
    /// the file (relative to the output directory) or the report's accession number
    pub item: String,
}

pub fn mrn(rng: &mut ChaCha8Rng) -> String {
    format!("{}", rng.gen_range(10_000_000u64..99_999_999))
}

pub fn accession(rng: &mut ChaCha8Rng) -> String {
    format!("ACC{}", rng.gen_range(1_000_000u64..9_999_999))
}

pub fn address(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{} {}, {}",
        rng.gen_range(10..9999),
        STREETS[rng.gen_range(0..STREETS.len())],
        CITIES[rng.gen_range(0..CITIES.len())]
    )
}

pub fn phone(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{}-{}-{}",
        rng.gen_range(201..989),
        rng.gen_range(201..989),
        rng.gen_range(1000..9999)
    )
}

/// Days since 1970-01-01 to (year, month, day).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let (y, m, d) = radfm_dicom::deid::civil_from_days(days);
    (y, m as u32, d as u32)
}

/// DICOM DA (YYYYMMDD) of a day number.
pub fn da(days: i64) -> String {
    let (y, m, d) = civil(days);
    format!("{y:04}{m:02}{d:02}")
}

/// "MM/DD/YYYY", as reports write dates.
pub fn us_date(days: i64) -> String {
    let (y, m, d) = civil(days);
    format!("{m:02}/{d:02}/{y:04}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(da(19_782), "20240229");
        assert_eq!(us_date(11_016), "02/29/2000");
    }
}
