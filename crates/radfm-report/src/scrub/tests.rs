use super::*;

/// (input, expected output) with no known identities.
#[test]
fn pattern_table() {
    let cases = [
        ("Compared with 03/14/2019.", "Compared with [DATE]."),
        ("Exam date 2019-03-14, stable.", "Exam date [DATE], stable."),
        ("Prior from March 3, 2018 shows", "Prior from [DATE] shows"),
        (
            "Call 555-123-4567 with results",
            "Call [PHONE] with results",
        ),
        ("MRN: 00123456. No effusion.", "MRN: [ID]. No effusion."),
        ("Accession # A998877 reviewed", "Accession # [ID] reviewed"),
        (
            "Discussed with Dr. Smith at 3pm.",
            "Discussed with Dr. [NAME] at [TIME].",
        ),
        (
            "Findings discussed with Jones by phone.",
            "Findings discussed with [NAME] by phone.",
        ),
        ("Sent to john.doe@example.org", "Sent to [EMAIL]"),
        ("Lives at 12 Elm Street now", "Lives at [ADDRESS] now"),
        ("A 93 year old woman.", "A [AGE] woman."),
        ("A 45 year old woman.", "A 45 year old woman."),
        (
            "Dictated by: Marisol Abernathy, MD.",
            "Dictated by: [NAME], MD.",
        ),
        (
            "Patient: Beatrix O'Rourke\nMRN: 1234567",
            "Patient: [NAME]\nMRN: [ID]",
        ),
        (
            "Read by Dr. John Q. Public today",
            "Read by Dr. [NAME] today",
        ),
        (
            "Discussed with Dr. Smith at 3pm.",
            "Discussed with Dr. [NAME] at [TIME].",
        ),
        (
            "No pneumothorax. Heart size normal.",
            "No pneumothorax. Heart size normal.",
        ),
        ("XXXX XXXX pleural effusion", "XXXX XXXX pleural effusion"),
    ];
    for (inp, want) in cases {
        assert_eq!(scrub(inp, &Known::default()).0, want, "{inp}");
    }
}

#[test]
fn known_identities_are_removed_everywhere() {
    let k = Known {
        names: vec!["QUIXOTE^ALONSO".into()],
        ids: vec!["ZX-4411".into()],
    };
    let (s, kinds) = scrub("Patient Alonso quixote, id ZX-4411; clear lungs.", &k);
    assert!(
        !s.to_lowercase().contains("quixote") && !s.contains("Alonso") && !s.contains("ZX-4411"),
        "{s}"
    );
    assert!(s.contains("clear lungs"));
    assert!(kinds.contains(&PhiKind::Name) && kinds.contains(&PhiKind::Id));
}

#[test]
#[ignore = "debugging aid: RADFM_SCRUB_DEBUG='text' cargo test -p radfm-report --lib debug_spans -- --ignored --nocapture"]
fn debug_spans() {
    let text = std::env::var("RADFM_SCRUB_DEBUG").unwrap_or_default();
    for s in find(&text, &Known::default()) {
        eprintln!("{:?} {:?}", s.kind, &text[s.start..s.end]);
    }
}

/// The leaks found in review, and names that are also words: found without cue words.
#[test]
fn review_leaks_and_wordy_names_are_found_without_cues() {
    let cases = [
        (
            "HISTORY: Margaret Okafor, 67F with cough.",
            "HISTORY: [NAME], 67F with cough.",
        ),
        ("Bob Lee MD", "[NAME] MD"),
        ("Callback 555-0188.", "Callback [PHONE]."),
        (
            "Transferred from Fort Wayne for dyspnea.",
            "Transferred from [ADDRESS] for dyspnea.",
        ),
        (
            "Outside films from Carmel, IN, reviewed.",
            "Outside films from [ADDRESS], reviewed.",
        ),
        (
            "Rose Young returns for follow-up.",
            "[NAME] returns for follow-up.",
        ),
        (
            "Hunter is a 45-year-old man.",
            "[NAME] is a 45-year-old man.",
        ),
        (
            "Findings given to Young, Rose at 10:45 AM.",
            "Findings given to [NAME] at [TIME].",
        ),
        ("SMITH, JOHN  MRN1234567", "[NAME]  [ID]"),
        (
            "Prior at Good Samaritan Hospital on 3/4.",
            "Prior at [INSTITUTION] on [DATE].",
        ),
        ("A 96-year-old woman.", "A [AGE] woman."),
        (
            "Images at https://pacs.example.org/v?s=12345",
            "Images at [URL]",
        ),
    ];
    for (inp, want) in cases {
        assert_eq!(scrub(inp, &Known::default()).0, want, "{inp}");
    }
}

/// Clinical text with eponyms, devices, levels and measurements is left alone.
#[test]
fn clinical_text_is_kept() {
    for t in [
        "Kerley B lines at the bases. No Hampton hump. Westermark sign is absent.",
        "Swan-Ganz catheter tip in the right pulmonary artery. Foley catheter in place.",
        "History of Hodgkin lymphoma. Dobhoff tube tip in the stomach.",
        "Mild L1 compression deformity. C5-C6 fusion. Nodule measures 8 x 6 mm.",
        "Mass in the right upper lobe. Heart size is normal. Stable 2.1 x 1.4 cm opacity.",
        "A 72 year old woman. Status post CABG in 2015. Sats 92% on 2 L.",
        "Follow-up per Fleischner Society guidelines. Small Bochdalek hernia.",
    ] {
        assert_eq!(scrub(t, &Known::default()).0, t);
    }
}

#[test]
fn surrogates_replace_spans_consistently() {
    let s = Surrogates::new([3; 32]);
    let p = Patient {
        id: "P1",
        date_offset_days: -30,
    };
    let text = "Rose Young seen 03/14/2019. Then Called Rose Young at 555-0188.";
    let spans = find(text, &Known::default());
    let out = replace(text, &spans, Replacement::Surrogates(&s, p));
    let words: Vec<&str> = out.split(|c: char| !c.is_alphanumeric()).collect();
    assert!(
        !words.contains(&"Rose") && !words.contains(&"Young") && !out.contains("555-0188"),
        "{out}"
    );
    assert!(
        out.starts_with(char::is_uppercase) && out.contains(" Called "),
        "{out}"
    );
    assert!(
        out.contains("02/12/2019"),
        "dates shift by the patient's offset: {out}"
    );
    let first = &out[..out.find(" seen").unwrap()];
    assert_eq!(
        out.matches(first).count(),
        2,
        "the same name gets the same surrogate: {out}"
    );
}
